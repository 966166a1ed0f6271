package rotator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/policies"
)

type jumpClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *jumpClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestClockJumps: the wall clock jumping backward after commit must not
// make rekey revoke the old key before the grace period has passed by the
// clock, nor re-run steps; jumping forward only lets waits end sooner (the
// grace period counts from the journaled commit time, as after a restart).
// A clock far in the future makes the policy due, which is safe.
func TestClockJumps(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: time.Hour}
	clock := &jumpClock{t: time.Now()} // key ages come from the provider, which stamps real time
	e, err := New(Options{Journal: f.j, Logger: zerolog.Nop(), Now: clock.Now, RecheckInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies([]*policies.Policy{f.p})
	ctx := context.Background()
	out, err := e.Rotate(ctx, "pay", RotateOptions{})
	if err != nil || out.Result != "committed" || out.Step != StepDrain {
		t.Fatalf("rotate: %+v %v", out, err)
	}
	committed := f.state(t).Active.CommittedAt

	clock.Set(committed.Add(-3 * time.Hour)) // backward, past the commit
	out, err = e.Advance(ctx, "pay")
	if err != nil || out.Step != StepDrain || !out.Next.Equal(committed.Add(time.Hour)) {
		t.Fatalf("after a backward jump: %+v %v", out, err)
	}
	if _, ok := w.keys[old]; !ok {
		t.Fatal("old key revoked after the clock jumped backward")
	}
	clock.Set(committed.Add(59 * time.Minute))
	if out, _ = e.Advance(ctx, "pay"); out.Step != StepDrain {
		t.Fatalf("revoked before the grace period ended: %+v", out)
	}
	clock.Set(committed.Add(time.Hour)) // forward to the end of the grace
	if out, err = e.Advance(ctx, "pay"); err != nil || out.Result != "done" {
		t.Fatalf("after the grace period: %+v %v", out, err)
	}
	if _, ok := w.keys[old]; ok {
		t.Fatal("old key not revoked")
	}
	w.check()

	// Backward far: the key looks newer than now; not due, no rotation.
	clock.Set(committed.Add(-30 * 24 * time.Hour))
	if out, _ = e.Advance(ctx, "pay"); out.Result != "not_due" {
		t.Fatalf("a clock in the past started a rotation: %+v", out)
	}
	// Forward far: due, and the rotation is complete and safe.
	clock.Set(committed.Add(40 * 24 * time.Hour))
	if out, err = e.Advance(ctx, "pay"); err != nil || out.Result != "committed" {
		t.Fatalf("a clock in the future: %+v %v", out, err)
	}
	w.check()
	if st := f.state(t); st.Generation != 2 || st.Active == nil || !st.Active.Committed() {
		t.Fatalf("state: %+v", st)
	}
}
