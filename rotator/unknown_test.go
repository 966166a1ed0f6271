package rotator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
)

// appReload is a reload hook that makes the application load the key sink:a
// serves; while hang is set it then blocks until its timeout, as a hook
// that applied the key and never exited.
type appReload struct {
	w    *world
	hang *atomic.Bool
}

func (a appReload) Reload(ctx context.Context, _ plugin.Rotation, _ plugin.Key) error {
	a.w.mu.Lock()
	a.w.app = a.w.served["sink:a"]
	a.w.record("app loads %s", a.w.app)
	a.w.mu.Unlock()
	if a.hang.Load() {
		<-ctx.Done()
		return fmt.Errorf("reload hook did not exit: %w", ctx.Err())
	}
	return nil
}

// appProbe checks that the application's key is accepted.
type appProbe struct{ w *world }

func (p appProbe) Check(ctx context.Context, _ plugin.Key) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if err := p.w.injected("probe:app"); err != nil {
		return err
	}
	if k, ok := p.w.keys[p.w.app]; !ok || !k.active {
		return fmt.Errorf("application rejected: its key %s is not accepted", p.w.app)
	}
	return nil
}

func appFixture(t *testing.T) (*fixture, *world, *atomic.Bool, string) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	w.app = old
	f := newFixture(t, fullProvider(w))
	hang := &atomic.Bool{}
	f.p.Reloads = []policies.ReloadBlock{{Kind: "app", Timeout: 100 * time.Millisecond, Reloader: appReload{w, hang}}}
	f.p.Probes = []policies.ProbeBlock{
		{Kind: "key", Target: probes.TargetKey, Timeout: 300 * time.Millisecond, Interval: time.Millisecond, Successes: 1, Probe: keyProbe{w}},
		{Kind: "app", Target: probes.TargetDependent, Timeout: 300 * time.Millisecond, Interval: time.Millisecond, Successes: 1, Probe: appProbe{w}},
	}
	return f, w, hang, old
}

// TestRollbackKeepsTheNewKeyWhenAReloadHungAfterApplyingIt is issue 8's
// first finding: a reload hook applies the new key to the application and
// then hangs past its timeout. The rollback restores the sinks and runs the
// hook again, which hangs again: nothing proves the application left the
// new key, so the new key must not be deleted. The policy is stuck, with an
// event, and the next rekey rotate finishes the rollback once the hook
// works.
func TestRollbackKeepsTheNewKeyWhenAReloadHungAfterApplyingIt(t *testing.T) {
	f, w, hang, old := appFixture(t)
	hang.Store(true)
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != OutcomeStuck || out.Step != StepRollback || !errors.Is(out.Err, ErrStuck) {
		t.Fatalf("Rotate = %+v, %v", out, err)
	}
	w.check()
	st := f.state(t)
	if st.Active == nil || st.Active.NewKeyID == "" || !st.Stuck || !strings.Contains(st.LastError, "outcome unknown") {
		t.Fatalf("state after a rollback without proof: %+v", st)
	}
	newKey := st.Active.NewKeyID
	if _, ok := w.keys[newKey]; !ok || !w.keys[newKey].active {
		t.Fatalf("the new key %s was deleted or deactivated although the application may hold it (app holds %s)", newKey, w.app)
	}
	if w.served["sink:a"] != old || w.served["sink:b"] != old {
		t.Fatalf("sinks serve %v, want the restored %s", w.served, old)
	}
	var stuck bool
	for _, ev := range *f.evs {
		stuck = stuck || ev.Step == StepRollback && ev.Result == ResultStuck
	}
	if !stuck {
		t.Fatal("no stuck event: nobody is told")
	}
	if out, _ := e.Advance(context.Background(), "pay"); out.Result != OutcomeStuck {
		t.Fatalf("the scheduler retried a stuck rollback: %+v", out)
	}

	hang.Store(false)
	out, err = e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != OutcomeRolledBack {
		t.Fatalf("rekey rotate after the hook was fixed = %+v, %v", out, err)
	}
	w.check()
	if _, ok := w.keys[newKey]; ok {
		t.Fatalf("the new key %s was not deleted once the application held the old key again", newKey)
	}
	if w.app != old {
		t.Fatalf("the application holds %s, want %s", w.app, old)
	}
	if st := f.state(t); st.Stuck || st.Active != nil {
		t.Fatalf("state after the finished rollback: %+v", st)
	}
}

// TestReconcileRetriesAStuckRollback: at start, a rollback that was stuck is
// tried again, and finishes when the proof now holds.
func TestReconcileRetriesAStuckRollback(t *testing.T) {
	f, w, hang, old := appFixture(t)
	hang.Store(true)
	e := f.engine(t, map[string]string{})
	if out, _ := e.Rotate(context.Background(), "pay", RotateOptions{}); out.Result != OutcomeStuck {
		t.Fatalf("Rotate = %+v", out)
	}
	hang.Store(false)
	e2 := f.engine(t, map[string]string{})
	if err := e2.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.check()
	st := f.state(t)
	if st.Active != nil || len(w.keys) != 1 || w.keys[old] == nil || w.app != old {
		t.Fatalf("after reconcile: state %+v keys %v app %s", st, w.keys, w.app)
	}
}

// TestOldKeyIsNotRevokedWithoutProof: after commit, the old key is
// deactivated and deleted only while the dependents pass with the new key;
// otherwise both keys stay and the policy is stuck.
func TestOldKeyIsNotRevokedWithoutProof(t *testing.T) {
	for _, soak := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprintf("soak=%s", soak), func(t *testing.T) {
			f, w, _, old := appFixture(t)
			f.p.Revoke = policies.Revoke{After: time.Hour, Soak: soak}
			e := f.engine(t, map[string]string{})
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
			if err != nil || out.Result != OutcomeCommitted || out.Step != StepDrain {
				t.Fatalf("Rotate = %+v, %v", out, err)
			}
			// The application loses the new key (say, it restarted from an
			// old copy) while the old key waits for revocation.
			w.mu.Lock()
			w.app = old
			w.fail["probe:app"] = 1000
			w.failErr["probe:app"] = plugin.Permanent(errors.New("application rejected"))
			w.mu.Unlock()
			f.p.Revoke.After = 0
			out, err = e.Advance(context.Background(), "pay")
			if err != nil || out.Result != OutcomeStuck || !errors.Is(out.Err, ErrStuck) {
				t.Fatalf("Advance = %+v, %v", out, err)
			}
			w.check()
			if k := w.keys[old]; k == nil || !k.active {
				t.Fatalf("old key deactivated or deleted without proof that no dependent holds it: %v", w.keys)
			}
			if st := f.state(t); !st.Stuck || st.Active == nil {
				t.Fatalf("state: %+v", st)
			}
			w.mu.Lock()
			w.fail["probe:app"] = 0
			w.app = f.state(t).CurrentKeyID
			w.mu.Unlock()
			out, err = e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || out.Result != OutcomeDone {
				t.Fatalf("rekey rotate once dependents pass = %+v, %v", out, err)
			}
			w.check()
		})
	}
}

func TestNoEffectKeepsTheChain(t *testing.T) {
	err := plugin.NoEffect(fmt.Errorf("refused before sending: %w", plugin.ErrConflict))
	if !errors.Is(err, plugin.ErrNoEffect) || !errors.Is(err, plugin.ErrConflict) || err.Error() != "refused before sending: changed by another writer" {
		t.Fatalf("NoEffect = %v", err)
	}
	if plugin.NoEffect(nil) != nil {
		t.Fatal("NoEffect(nil) != nil")
	}
}
