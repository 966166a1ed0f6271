package rotator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
)

// blockingDepProbe passes on the forward path until armed; then it blocks
// until its context ends and records why it ended.
type blockingDepProbe struct {
	mu      sync.Mutex
	armed   bool
	started chan struct{}
	ended   []error
}

func (p *blockingDepProbe) Check(ctx context.Context, _ plugin.Key) error {
	p.mu.Lock()
	armed := p.armed
	p.mu.Unlock()
	if !armed {
		return nil
	}
	select {
	case p.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	p.mu.Lock()
	p.ended = append(p.ended, ctx.Err())
	p.mu.Unlock()
	return ctx.Err()
}

// TestInterruptedRollbackDoesNotWaitOutTheProof: a rotation interrupted
// (shutdown, Ctrl-C) during verify rolls back; its proof that the
// dependents work with the restored key is cut InterruptGrace after the
// interruption, not held for the probes' whole patience, and the rollback
// stays pending with the new key kept (finished at the next start).
func TestInterruptedRollbackDoesNotWaitOutTheProof(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	dep := &blockingDepProbe{started: make(chan struct{}, 1)}
	f.p.StepTimeout = 3 * time.Second
	f.p.Probes = []policies.ProbeBlock{
		{Kind: "key", Target: probes.TargetKey, Timeout: time.Second, Interval: time.Millisecond, Successes: 1, Probe: keyProbe{w}},
		{Kind: "dep", Target: probes.TargetDependent, Timeout: 3 * time.Second, Interval: time.Millisecond, Successes: 1, Probe: dep},
	}
	e, err := New(Options{Journal: f.j, Logger: zerolog.New(f.logs), Failpoints: map[string]string{}, InterruptGrace: 20 * time.Millisecond, RecheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies([]*policies.Policy{f.p})
	dep.armed = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Outcome, 1)
	go func() {
		out, _ := e.Rotate(ctx, "pay", RotateOptions{})
		done <- out
	}()
	<-dep.started // verify is probing the dependents
	cancel()
	out := <-done
	if out.Step != StepRollback || out.Result != OutcomeFailed {
		t.Fatalf("outcome %+v, want the rollback left pending", out)
	}
	dep.mu.Lock()
	ended := append([]error(nil), dep.ended...)
	dep.mu.Unlock()
	if len(ended) < 2 {
		t.Fatalf("the dependent probe ran %d times, want the forward check and the rollback's proof", len(ended))
	}
	if last := ended[len(ended)-1]; !errors.Is(last, context.Canceled) {
		t.Fatalf("the rollback's proof ended by %v, want cancelled by the interrupt grace (not the probe's timeout)", last)
	}
	st := f.state(t)
	if st.Active == nil || st.Active.Step != StepRollback {
		t.Fatalf("rollback not pending: %+v", st)
	}
	if _, ok := w.keys[st.Active.NewKeyID]; !ok {
		t.Fatal("the new key was deleted without the proof")
	}
	if w.served["sink:a"] != old || w.served["sink:b"] != old {
		t.Fatalf("sinks serve %v, want the restored %s", w.served, old)
	}
	w.check()
}
