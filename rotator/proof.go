package rotator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
)

// proveDependents runs every dependent probe against key: the proof that
// the dependents work with the key the sinks serve, required before a key
// any of them may hold is deactivated or deleted (docs/protocol.md,
// "Unknown outcomes"). A failed proof leaves the policy stuck, so the
// proof is patient: each probe gets at least the policy's step timeout.
func (r *run) proveDependents(ctx context.Context, key plugin.Key) error {
	for _, pb := range r.p.Probes {
		if pb.Target != probes.TargetDependent {
			continue
		}
		pb.Timeout = max(pb.Timeout, r.p.StepTimeout)
		if err := r.runProbe(ctx, pb, key); err != nil {
			return fmt.Errorf("probe %s (%s): %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err)
		}
	}
	return nil
}

// proveNewKeyServed holds back step (deactivate or revoke of the old keys
// after commit) unless the dependents pass with the new key. Without the
// proof both keys stay, the policy is stuck with the reason, and an event
// says so; rekey rotate tries again.
func (r *run) proveNewKeyServed(ctx context.Context, step Step) error {
	err := r.proveDependents(ctx, r.key)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	old := make([]string, len(r.rec.OldKeyIDs))
	for i, id := range r.rec.OldKeyIDs {
		old[i] = secret.Mask(id)
	}
	err = r.clean(fmt.Errorf("%w: the dependents do not pass with the new key, so one may still use the old key %s; %s is held back and both keys are kept; fix the dependents, then run: %s: %w",
		ErrStuck, strings.Join(old, ", "), step, r.p.RotateCommand(), err))
	if serr := r.save(ctx, func(st *PolicyState) {
		st.Stuck = true
		st.LastError = err.Error()
	}); serr != nil {
		return serr
	}
	r.emit(ctx, step, ResultStuck, 0, err)
	return err
}

// graceContext is the context of the last part of a rollback (reloads and
// the proof), which must outlive its caller's cancellation long enough to
// end cleanly but must not hold a shutdown for the whole patience of the
// probes: it ends Options.InterruptGrace after ctx ends.
func (e *Engine) graceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	done := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			timer = time.AfterFunc(e.opts.InterruptGrace, cancel)
		}
	})
	return gctx, func() {
		stop()
		mu.Lock()
		done = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}
