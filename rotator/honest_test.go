package rotator

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// TestInterruptionsAreNotFailures: a crash before commit (the next start
// rolls back) and a shutdown before commit (the context is cancelled) roll
// back without counting a failure toward max_failures.
func TestInterruptionsAreNotFailures(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		w := newWorld(t)
		w.maxKeys = 2
		w.seed("sink:a", "sink:b")
		f := newFixture(t, fullProvider(w))
		for i := 0; i < f.p.MaxFailures+1; i++ {
			func() {
				defer func() { _ = recover() }()
				e := f.engine(t, map[string]string{"verify.before": "panic"})
				_, _ = e.Rotate(context.Background(), "pay", RotateOptions{})
			}()
			if err := f.engine(t, map[string]string{}).Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		w.check()
		if st := f.state(t); st.Failures != 0 || st.Stuck || !st.NotBefore.IsZero() || st.LastResult != string(StepRolledBack) {
			t.Fatalf("crashes counted as failures: %+v", st)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		w := newWorld(t)
		w.maxKeys = 2
		w.seed("sink:a", "sink:b")
		f := newFixture(t, fullProvider(w))
		f.p.Probes[1].Timeout = time.Minute
		e := f.engine(t, map[string]string{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			waitFor(t, "verify", 20*time.Second, func() bool {
				st, _, _ := f.j.Get(context.Background(), "pay")
				return st.Active != nil && st.Active.Step == StepVerify
			})
			cancel()
			// The application works with the restored key: the rollback's
			// proof passes.
			waitFor(t, "rollback", 20*time.Second, func() bool {
				st, _, _ := f.j.Get(context.Background(), "pay")
				return st.Active == nil || st.Active.Step == StepRollback
			})
			w.mu.Lock()
			w.fail["probe:dep"] = 0
			w.mu.Unlock()
		}()
		w.mu.Lock()
		w.fail["probe:dep"] = 1 << 30
		w.mu.Unlock()
		out, _ := e.Rotate(ctx, "pay", RotateOptions{})
		if out.Result != OutcomeRolledBack {
			t.Fatalf("Rotate = %+v", out)
		}
		if st := f.state(t); st.Failures != 0 || !st.NotBefore.IsZero() {
			t.Fatalf("a shutdown counted as a failure: %+v (outcome %+v)", st, out)
		}
	})
}

// TestRotateJoinsARotationInFlightAndSaysSo: rekey rotate while a rotation
// waits in drain continues that rotation and says it joined it.
func TestRotateJoinsARotationInFlightAndSaysSo(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: time.Hour}
	e := f.engine(t, map[string]string{})
	first, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || first.Joined || first.Result != OutcomeCommitted {
		t.Fatalf("first Rotate = %+v, %v", first, err)
	}
	second, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || !second.Joined || second.RotationID != first.RotationID || second.Result != OutcomeCommitted {
		t.Fatalf("second Rotate = %+v, %v", second, err)
	}
	if len(second.Pending) == 0 || second.Pending[0] != StepDrain || !slices.Contains(second.Pending, StepRevoke) {
		t.Fatalf("pending steps %v", second.Pending)
	}
	if st := f.state(t); st.Generation != 1 {
		t.Fatalf("a second rotation started: generation %d", st.Generation)
	}
}

// hangingDeactivate is a provider whose deactivate never answers.
type hangingDeactivate struct{ fullProv }

func (h hangingDeactivate) Deactivate(ctx context.Context, id string) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRotateWaitReturnsWhenAStepKeepsFailing: a deactivate that hangs makes
// rekey rotate -wait return, saying what is pending, instead of waiting
// forever.
func TestRotateWaitReturnsWhenAStepKeepsFailing(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, hangingDeactivate{fullProvider(w)})
	f.p.Revoke = policies.Revoke{Soak: time.Hour}
	e := f.engine(t, map[string]string{})
	done := make(chan Outcome, 1)
	go func() {
		out, _ := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
		done <- out
	}()
	select {
	case out := <-done:
		if out.Result != OutcomeCommitted || out.Err == nil || out.Step != StepDeactivate || !slices.Contains(out.Pending, StepRevoke) {
			t.Fatalf("Rotate -wait = %+v", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rotate -wait did not return while deactivate kept failing")
	}
	if _, ok := w.keys[old]; !ok {
		t.Fatal("the old key was revoked")
	}
	w.check()
}

// TestRotateWaitReturnsAfterOneFailedAttempt: rekey rotate -wait returns
// after the first failed attempt of a step after commit (the step already
// retried for its step timeout), committed, saying what is pending.
func TestRotateWaitReturnsAfterOneFailedAttempt(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	w.fail["deactivate"] = 1 << 20
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{Soak: time.Hour}
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
	if err != nil || out.Result != OutcomeCommitted || out.Err == nil || out.Step != StepDeactivate || !slices.Contains(out.Pending, StepDeactivate) {
		t.Fatalf("Rotate -wait = %+v, %v", out, err)
	}
	attempts := 0
	for _, ev := range *f.evs {
		if ev.Step == StepDeactivate && ev.Result == ResultFailed {
			attempts++
		}
	}
	if attempts != 1 {
		t.Fatalf("rotate -wait made %d failed deactivate attempts, want 1", attempts)
	}
	if _, ok := w.keys[old]; !ok {
		t.Fatal("the old key was revoked")
	}
	w.check()
}
