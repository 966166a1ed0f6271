package rotator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRotateWaitDoesNotHoldThePolicyLock: while rekey rotate -wait sleeps
// through the drain period, the scheduler's Advance of the same policy
// must not block behind it.
func TestRotateWaitDoesNotHoldThePolicyLock(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: time.Hour}
	e := f.engine(t, map[string]string{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rotated := make(chan Outcome, 1)
	go func() {
		out, _ := e.Rotate(ctx, "pay", RotateOptions{UntilDone: true})
		rotated <- out
	}()
	waitFor(t, "the rotation to commit and drain", 20*time.Second, func() bool {
		st, _, _ := f.j.Get(context.Background(), "pay")
		return st.Active != nil && st.Active.Step == StepDrain
	})
	advanced := make(chan Outcome, 1)
	go func() {
		out, _ := e.Advance(context.Background(), "pay")
		advanced <- out
	}()
	select {
	case out := <-advanced:
		if out.Result != OutcomeCommitted || out.Step != StepDrain {
			t.Fatalf("Advance during drain = %+v", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Advance blocked behind rekey rotate -wait sleeping through drain: the policy lock is held across the sleep")
	}
	cancel()
	select {
	case out := <-rotated:
		if out.Result != OutcomeCommitted {
			t.Fatalf("Rotate after cancel = %+v", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Rotate did not return after its context was cancelled")
	}
}

// TestRotateWaitReportsARotationFinishedByTheScheduler: when the scheduler
// finishes the rotation while rekey rotate -wait sleeps, Rotate reports
// that rotation's end and starts no other.
func TestRotateWaitReportsARotationFinishedByTheScheduler(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: time.Hour}
	e := f.engine(t, map[string]string{})
	first, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || first.Result != OutcomeCommitted {
		t.Fatalf("Rotate = %+v, %v", first, err)
	}
	f.p.Revoke = policies.Revoke{}
	out, err := e.continueLocked(context.Background(), f.p, first.RotationID)
	if err != nil || out.Result != OutcomeDone {
		t.Fatalf("continue = %+v, %v", out, err)
	}
	again, err := e.continueLocked(context.Background(), f.p, first.RotationID)
	if err != nil || again.Result != OutcomeDone || again.RotationID != first.RotationID {
		t.Fatalf("continuing a finished rotation = %+v, %v", again, err)
	}
	if st := f.state(t); st.Generation != 1 || st.Active != nil {
		t.Fatalf("a second rotation was started: %+v", st)
	}
}

// TestSchedulerSlotsAreNotSpentWaitingForPolicyLocks: with every slot's
// worth of policies busy elsewhere (their locks held, as by rekey rotate),
// a due policy is still rotated.
func TestSchedulerSlotsAreNotSpentWaitingForPolicyLocks(t *testing.T) {
	busyWorld := newWorld(t)
	busyWorld.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(busyWorld))
	var busy []*policies.Policy
	for i := range MaxConcurrent {
		p := *f.p
		p.Name = fmt.Sprintf("busy%d", i)
		busy = append(busy, &p)
	}
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	free := newFixture(t, fullProvider(w)).p
	free.Name = "free"
	free.Schedule.Every = time.Hour // the seeded key is 48h old: due

	e := f.engine(t, map[string]string{})
	e.SetPolicies(busy)
	for _, p := range busy {
		e.policyLock(p.Name).Lock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		for _, p := range busy {
			e.policyLock(p.Name).Unlock()
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// Give the scheduler time to start on the busy policies (the old code
	// took all slots here); the assertion below does not depend on it.
	time.Sleep(100 * time.Millisecond)
	e.SetPolicies(append(busy, free))
	waitFor(t, "the free policy to be rotated while the others are busy", 30*time.Second, func() bool {
		st, _, _ := f.j.Get(context.Background(), "free")
		return !st.LastSuccess.IsZero()
	})
	w.check()
}
