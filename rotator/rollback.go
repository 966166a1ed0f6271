package rotator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// rollback undoes a rotation before commit: every sink is restored to its
// previous version, dependents are reloaded, then the new key is deleted.
// The new key is deleted only once no sink can serve it.
func (r *run) rollback(ctx context.Context, cause error) (Outcome, error) {
	if r.rec.Committed() {
		return Outcome{}, fmt.Errorf("internal error: rollback after commit of %s", r.rec.ID)
	}
	// Roll back even when the caller's context is cancelled (shutdown), but
	// within a bound; what is left is finished at the next start. Each sink
	// restore gets a step timeout of its own: a sink that cannot be reached
	// must not use up the others' time and leave them serving the new key.
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), r.p.StepTimeout)
	}
	rctx, cancel := bounded()
	defer cancel()
	if r.rec.Step != StepRollback {
		r.rec.Step = StepRollback
		r.rec.Error = cause.Error()
		if err := r.save(rctx, nil); err != nil {
			return Outcome{}, err
		}
		r.emit(rctx, StepRollback, ResultStarted, 0, cause)
	}
	if err := r.e.fp.hit(rctx, "rollback.before"); err != nil {
		return r.rollbackPending(rctx, cause, err)
	}
	if r.nothingBefore() {
		return r.keepNewKey(rctx, cause)
	}
	rot := r.rotation()
	var errs []error
	for i := len(r.p.Sinks) - 1; i >= 0; i-- {
		sb := r.p.Sinks[i]
		loc := sb.Sink.Location()
		sr, ok := r.rec.Sinks[loc]
		if !ok || !sr.PrevRead {
			continue
		}
		sctx, scancel := bounded()
		err := r.e.retry(sctx, r.p, func(ctx context.Context) error { return sb.Sink.Rollback(ctx, rot, sr.State) })
		scancel()
		switch {
		case errors.Is(err, plugin.ErrConflict):
			r.log.Warn().Str("sink", loc).Msg("sink changed by another writer since this rotation; it does not serve the new key, leaving it as it is")
		case err != nil:
			errs = append(errs, fmt.Errorf("restoring %s: %w", loc, err))
		}
	}
	if len(errs) > 0 {
		return r.rollbackPending(rctx, cause, errors.Join(errs...))
	}
	if r.rec.Promoted {
		if err := r.proveOldKeyServed(ctx); err != nil {
			if ctx.Err() != nil {
				return r.rollbackPending(rctx, cause, err)
			}
			return r.rollbackStuck(rctx, cause, err)
		}
	}
	prov := r.p.Provider.Provider
	switch {
	case r.rec.NewKeyID != "":
		id := r.rec.NewKeyID
		if err := r.e.retry(rctx, r.p, func(ctx context.Context) error { return prov.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			if d, ok := providers.AsDeactivator(prov); ok {
				if derr := d.Deactivate(rctx, id); derr == nil {
					r.log.Warn().Err(r.clean(err)).Str("key", secret.Mask(id)).Msg("could not delete the new key; deactivated it instead, retrying deletion later")
				}
			}
			return r.rollbackPending(rctx, cause, fmt.Errorf("deleting new key %s: %w", secret.Mask(id), err))
		}
	case !r.rec.IntentAt.IsZero():
		if err := r.deleteOrphans(rctx); err != nil {
			return r.rollbackPending(rctx, cause, err)
		}
	}
	if err := r.e.fp.hit(rctx, "rollback.after"); err != nil {
		return r.rollbackPending(rctx, cause, err)
	}
	return r.finishRollback(rctx, cause, nil)
}

// finishRollback journals the end of a rollback (with apply's changes to
// the policy's state, if any), counts a failure unless the rotation was
// stopped from outside, and says so.
func (r *run) finishRollback(ctx context.Context, cause error, apply func(st *PolicyState)) (Outcome, error) {
	r.e.takeLive(r.rec.ID, true)
	r.rec.Result = string(StepRolledBack)
	r.rec.Step = StepRolledBack
	r.rec.FinishedAt = r.e.now()
	st, err := r.e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		if apply != nil {
			apply(st)
		}
		if r.rec.Interrupted {
			// Stopped from outside: not a failure of the rotation.
			st.LastError = cause.Error()
		} else {
			r.e.recordFailure(st, r.p, cause)
		}
		st.LastResult = string(StepRolledBack)
		st.finish(r.rec)
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	r.emit(ctx, StepRolledBack, ResultRolledBack, 0, cause)
	r.finishSinks(ctx)
	if st.Stuck {
		r.emit(ctx, StepRolledBack, ResultStuck, 0, cause)
	}
	return r.outcome(OutcomeRolledBack, cause, st.NotBefore), nil
}

// proveOldKeyServed establishes that no dependent may hold the new key
// once the sinks serve the previous value again: every reload hook runs
// and succeeds, then every dependent probe passes against the old key. A
// reload that failed or timed out may have applied the new key before it
// failed: its outcome is unknown, and the new key must stay.
func (r *run) proveOldKeyServed(ctx context.Context) error {
	pctx, cancel := r.e.graceContext(ctx)
	defer cancel()
	if err := r.runReloads(pctx); err != nil {
		return fmt.Errorf("re-running the reload hooks after restoring the previous value failed, so a dependent may still hold the new key (outcome unknown): %w", err)
	}
	old := plugin.Key{}
	if len(r.rec.OldKeyIDs) > 0 {
		old.ID = r.rec.OldKeyIDs[0]
	}
	if err := r.proveDependents(pctx, old); err != nil {
		return fmt.Errorf("dependents do not pass with the restored previous value, so one may still hold the new key: %w", err)
	}
	return nil
}

// nothingBefore reports whether the rotation failed after a sink may have
// served its key although nothing came before it: no key known to rekey or
// found at the provider, and every sink empty.
func (r *run) nothingBefore() bool {
	if !r.rec.NoPreviousKey || !r.rec.Promoted || r.rec.NewKeyID == "" {
		return false
	}
	for _, sr := range r.rec.Sinks {
		if sr.Prev != "" {
			return false
		}
	}
	return true
}

// keepNewKey ends such a rotation without rolling back. Restoring the sinks
// would serve nothing, which helps no dependent and strands one that
// already uses the new key; deleting the key would need the proof that no
// dependent holds it, which nothing can give. So the key stays served and
// becomes the current key, marked unverified: the policy is due again at
// once (after the backoff), and the next rotation replaces the key by the
// whole protocol, retiring it only after its dependents pass with the new
// one.
func (r *run) keepNewKey(ctx context.Context, cause error) (Outcome, error) {
	kept := fmt.Errorf("%w; there was no earlier key to go back to, so the sinks keep serving the new key %s as the current key, unverified; the next rotation replaces it", cause, secret.Mask(r.rec.NewKeyID))
	if err := r.e.fp.hit(ctx, "rollback.after"); err != nil {
		return r.rollbackPending(ctx, cause, err)
	}
	var unserved []string
	for _, id := range r.rec.OldKeyIDs {
		// An earlier unverified key that no sink served (every sink was
		// empty before this rotation): no dependent can hold it.
		err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return r.p.Provider.Provider.Delete(ctx, id) })
		if err != nil && !errors.Is(err, plugin.ErrNotFound) {
			r.log.Warn().Err(r.clean(err)).Str("key", secret.Mask(id)).Msg("could not delete the earlier unverified key, which no sink served; it is deleted before the next rotation")
			unserved = append(unserved, id)
		}
	}
	seen := r.rec.NewKeySeen
	if seen.IsZero() {
		seen = r.e.now()
	}
	r.log.Warn().Str("new_key", secret.Mask(r.rec.NewKeyID)).Msg("the first rotation failed after serving its key, with no earlier key to go back to: the key stays served as the current key, unverified, and is replaced by the next rotation")
	return r.finishRollback(ctx, kept, func(st *PolicyState) {
		st.CurrentKeyID = r.rec.NewKeyID
		st.CurrentKeyCreated = r.rec.NewKeyCreated
		st.CurrentKeySeen = seen
		st.CurrentKeyExpires = r.rec.NewKeyExpires
		st.CurrentKeyUnverified = true
		for _, id := range unserved {
			if !contains(st.Retired, id) {
				st.Retired = append(st.Retired, id)
			}
		}
	})
}

// rollbackStuck keeps both keys: the rollback could not prove that no
// dependent holds the new key. The policy is stuck until the proof
// succeeds, which is tried again at start and by rekey rotate.
func (r *run) rollbackStuck(ctx context.Context, cause, err error) (Outcome, error) {
	err = r.clean(fmt.Errorf("%w: both keys are kept; fix the dependents, then run: %s: %w", ErrStuck, r.p.RotateCommand(), err))
	if serr := r.save(ctx, func(st *PolicyState) {
		st.Stuck = true
		st.LastResult = string(OutcomeStuck)
		st.LastError = err.Error()
	}); serr != nil {
		return Outcome{}, serr
	}
	r.emit(ctx, StepRollback, ResultFailed, 0, err)
	r.emit(ctx, StepRollback, ResultStuck, 0, err)
	return r.outcome(OutcomeStuck, errors.Join(cause, err), time.Time{}), nil
}

func (r *run) rollbackPending(ctx context.Context, cause, err error) (Outcome, error) {
	r.emit(ctx, StepRollback, ResultFailed, 0, err)
	next := r.e.now().Add(r.e.opts.RecheckInterval)
	return r.outcome(OutcomeFailed, errors.Join(cause, fmt.Errorf("rollback incomplete, retried at %s: %w", next.Format(time.RFC3339), err)), next), nil
}

// deleteOrphans removes a key created by this rotation whose id was never
// journaled (a crash between the provider's answer and the journal write).
func (r *run) deleteOrphans(ctx context.Context) error {
	l, ok := providers.AsLister(r.p.Provider.Provider)
	if !ok {
		r.log.Warn().Msg("the provider cannot list keys: if the interrupted create made a key, it cannot be found; the exec provider should implement list")
		return nil
	}
	st, _, err := r.e.journal.Get(ctx, r.p.Name)
	if err != nil {
		return err
	}
	keys, err := l.List(ctx)
	if err != nil {
		return fmt.Errorf("listing keys to find an orphan: %w", err)
	}
	for _, id := range OrphanKeys(keys, st, r.rec) {
		r.log.Warn().Str("key", secret.Mask(id)).Msg("deleting orphan key created by the interrupted rotation")
		if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return r.p.Provider.Provider.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			return fmt.Errorf("deleting orphan key %s: %w", secret.Mask(id), err)
		}
	}
	return nil
}
