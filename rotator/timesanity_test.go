package rotator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
)

// futureProv is a provider whose clock is wrong: every key it creates
// claims to be from 2099.
type futureProv struct{ fullProv }

var year2099 = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

func (p futureProv) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	k, err := p.fullProv.Create(ctx, rot)
	k.CreatedAt = year2099
	return k, err
}

// TestKeyCreatedInTheFutureStillRotates: issue 8, "Time": a provider that
// reports created_at in 2099 gave a negative age, and the policy was not
// due for decades. The key's age must count from when rekey first saw it,
// with a warning in the log and in status.
func TestKeyCreatedInTheFutureStillRotates(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, futureProv{fullProvider(w)})
	start := time.Now()
	clock := &jumpClock{t: start}
	e, err := New(Options{Journal: f.j, Logger: zerolog.New(f.logs), Now: clock.Now, RecheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies([]*policies.Policy{f.p})
	ctx := context.Background()
	if out, err := e.Rotate(ctx, "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != OutcomeDone {
		t.Fatalf("first rotation: %+v %v", out, err)
	}
	if !strings.Contains(f.logs.String(), "2099-01-01T00:00:00Z") {
		t.Fatalf("no warning about the creation time in the log:\n%s", f.logs)
	}
	clock.Set(start.Add(time.Hour))
	sts, err := e.Status(ctx)
	if err != nil || len(sts) != 1 {
		t.Fatal(sts, err)
	}
	if s := sts[0]; !strings.Contains(s.Warning, "2099") || s.KeyAgeSec < 3590 || s.KeyAgeSec > 3700 || !s.NextDue.Before(start.Add(31*24*time.Hour)) {
		t.Fatalf("status: warning %q, age %ds, next due %s; want a warning, an age of about an hour, due within 31 days", s.Warning, s.KeyAgeSec, s.NextDue)
	}
	if out, err := e.Advance(ctx, "pay"); err != nil || out.Result != OutcomeNotDue {
		t.Fatalf("an hour later: %+v %v", out, err)
	}
	clock.Set(start.Add(31 * 24 * time.Hour))
	out, err := e.Advance(ctx, "pay")
	if err != nil || out.Result == OutcomeNotDue || f.state(t).Generation != 2 {
		t.Fatalf("31 days later the policy (every 30 days) did not rotate: %+v %v", out, err)
	}
	w.check()
}
