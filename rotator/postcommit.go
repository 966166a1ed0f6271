package rotator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// drain waits the grace period after commit and, where the provider can
// tell, until the old keys are no longer used.
func (r *run) drain(ctx context.Context) (stepResult, error) {
	if len(r.rec.OldKeyIDs) == 0 || r.rec.Compromised {
		return stepResult{quiet: true}, nil
	}
	now := r.e.now()
	until := r.rec.CommittedAt.Add(r.p.Revoke.After)
	if now.Before(until) {
		r.announceWait(ctx, StepDrain)
		return stepResult{wake: until}, nil
	}
	if ur, ok := providers.AsUsageReporter(r.p.Provider.Provider); ok && r.p.Revoke.WaitUnused {
		settle := r.rec.CommittedAt.Add(ur.UsageReportingDelay())
		if now.Before(settle) {
			r.announceWait(ctx, StepDrain)
			return stepResult{wake: minTime(settle, now.Add(r.e.opts.RecheckInterval))}, nil
		}
		for _, id := range r.rec.OldKeyIDs {
			var lu time.Time
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { lu, err = ur.LastUsed(ctx, id); return err }); err != nil {
				return stepResult{}, fmt.Errorf("asking when old key %s was last used: %w", secret.Mask(id), err)
			}
			if !lu.IsZero() && !lu.Before(r.rec.CommittedAt) {
				err := fmt.Errorf("old key %s was used at %s, after commit: a dependent still uses it; revocation waits", secret.Mask(id), lu.Format(time.RFC3339))
				r.emit(ctx, StepDrain, ResultWaiting, 0, err)
				return stepResult{wake: now.Add(r.e.opts.RecheckInterval)}, nil
			}
		}
	}
	return stepResult{quiet: true}, nil
}

func describeDrain(p *policies.Policy) []string {
	drain := fmt.Sprintf("drain: wait %s after commit", p.Revoke.After)
	if _, ok := providers.AsUsageReporter(p.Provider.Provider); ok && p.Revoke.WaitUnused {
		drain += " and until the old key is unused"
	}
	return []string{drain}
}

// deactivate disables the old keys for the soak, where the provider can.
func (r *run) deactivate(ctx context.Context) (stepResult, error) {
	if r.p.Revoke.Soak <= 0 || len(r.rec.OldKeyIDs) == 0 || r.rec.Compromised {
		return stepResult{quiet: true}, nil
	}
	d, ok := providers.AsDeactivator(r.p.Provider.Provider)
	if ok {
		if err := r.proveNewKeyServed(ctx, StepDeactivate); err != nil {
			return stepResult{}, err
		}
		if err := r.flush(ctx); err != nil {
			return stepResult{}, err
		}
		if err := r.intend(ctx, StepDeactivate); err != nil {
			return stepResult{}, err
		}
		for _, id := range r.rec.OldKeyIDs {
			if err := r.e.fp.hit(ctx, "deactivate.before"); err != nil {
				return stepResult{}, err
			}
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return d.Deactivate(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
				return stepResult{}, fmt.Errorf("deactivating old key %s: %w", secret.Mask(id), err)
			}
			if err := r.e.fp.hit(ctx, "deactivate.after"); err != nil {
				return stepResult{}, err
			}
		}
	}
	r.rec.DeactivatedAt = r.e.now()
	return stepResult{quiet: !ok}, nil
}

func describeDeactivate(p *policies.Policy) []string {
	if p.Revoke.Soak <= 0 {
		return nil
	}
	if _, ok := providers.AsDeactivator(p.Provider.Provider); ok {
		return []string{"deactivate the old key"}
	}
	return nil
}

// soak keeps probing dependents while the old keys are deactivated; if
// they fail, the old keys come back and the policy is stuck.
func (r *run) soak(ctx context.Context) (stepResult, error) {
	if r.p.Revoke.Soak <= 0 || len(r.rec.OldKeyIDs) == 0 || r.rec.Compromised {
		return stepResult{quiet: true}, nil
	}
	now := r.e.now()
	until := r.rec.DeactivatedAt.Add(propagation(r.p.Provider.Provider)).Add(r.p.Revoke.Soak)
	if err := r.flush(ctx); err != nil {
		return stepResult{}, err
	}
	var err error
	for _, pb := range r.p.Probes {
		if pb.Target != probes.TargetDependent {
			continue
		}
		if err = r.runProbe(r.probeContext(ctx, StepSoak), pb, r.key); err != nil {
			err = fmt.Errorf("probe %s (%s) failed during soak: %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err)
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return stepResult{}, ctx.Err()
		}
		return stepResult{}, r.reactivate(ctx, err)
	}
	if now.Before(until) {
		r.announceWait(ctx, StepSoak)
		return stepResult{wake: minTime(until, now.Add(r.e.opts.RecheckInterval))}, nil
	}
	return stepResult{quiet: true}, nil
}

// propagation is how long a deactivation may take to take effect
// (providers.Propagator): the soak starts counting only after it, so the
// probe that ends the soak runs when the old key is refused for certain.
func propagation(prov providers.Provider) time.Duration {
	if _, ok := providers.AsDeactivator(prov); !ok {
		return 0
	}
	if pr, ok := providers.AsPropagator(prov); ok && pr.PropagationDelay() > 0 {
		return pr.PropagationDelay()
	}
	return 0
}

func describeSoak(p *policies.Policy) []string {
	if p.Revoke.Soak <= 0 {
		return nil
	}
	if _, ok := providers.AsDeactivator(p.Provider.Provider); ok {
		return []string{fmt.Sprintf("soak %s with dependent probes (re-activate the old key on failure)", p.Revoke.Soak)}
	}
	return []string{fmt.Sprintf("soak %s with dependent probes (the provider cannot deactivate)", p.Revoke.Soak)}
}

// reactivate brings the old keys back after dependents failed in the soak
// and marks the policy stuck: something still used the old key.
func (r *run) reactivate(ctx context.Context, cause error) error {
	if d, ok := providers.AsDeactivator(r.p.Provider.Provider); ok {
		for _, id := range r.rec.OldKeyIDs {
			if err := r.e.retry(context.WithoutCancel(ctx), r.p, func(ctx context.Context) error { return d.Activate(ctx, id) }); err != nil {
				cause = errors.Join(cause, fmt.Errorf("re-activating old key %s: %w", secret.Mask(id), err))
			}
		}
	}
	cause = r.clean(cause)
	r.rec.Step = StepDrain
	r.rec.DeactivatedAt = time.Time{}
	r.rec.Error = cause.Error()
	if err := r.save(ctx, func(st *PolicyState) {
		st.Stuck = true
		st.LastError = cause.Error()
	}); err != nil {
		return err
	}
	r.emit(ctx, StepSoak, ResultReactivated, 0, cause)
	r.emit(ctx, StepSoak, ResultStuck, 0, cause)
	return errStuckSoak
}

var errStuckSoak = fmt.Errorf("%w: dependents failed during soak: old key re-activated; policy is stuck until an operator runs rekey rotate", ErrStuck)

// revoke deletes the old keys and finishes the rotation.
func (r *run) revoke(ctx context.Context) (stepResult, error) {
	prov := r.p.Provider.Provider
	if len(r.rec.OldKeyIDs) > 0 {
		if err := r.proveBeforeRevoke(ctx); err != nil {
			return stepResult{}, err
		}
		// The commit journaled the old keys as retired: that is the intent
		// to revoke them. Only a change since (a deactivation) is journaled
		// first; moves through steps that did nothing are not.
		if r.changed {
			if err := r.flush(ctx); err != nil {
				return stepResult{}, err
			}
		}
		if err := r.intend(ctx, StepRevoke); err != nil {
			return stepResult{}, err
		}
	}
	for _, id := range r.rec.OldKeyIDs {
		if err := r.e.fp.hit(ctx, "revoke.before"); err != nil {
			return stepResult{}, err
		}
		if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return prov.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			return stepResult{}, fmt.Errorf("deleting old key %s: %w", secret.Mask(id), err)
		}
		if err := r.e.fp.hit(ctx, "revoke.after"); err != nil {
			return stepResult{}, err
		}
	}
	r.rec.RevokedAt = r.e.now()
	return stepResult{
		quiet: len(r.rec.OldKeyIDs) == 0,
		apply: func(st *PolicyState) {
			for _, id := range r.rec.OldKeyIDs {
				st.Retired = remove(st.Retired, id)
			}
		},
	}, nil
}

func describeRevoke(*policies.Policy) []string { return []string{"revoke (delete) the old key"} }

// watch keeps probing dependents for revoke.watch after revocation, and
// then finishes the rotation. Revocation cannot be undone: a failure here
// is reported as the loudest alert (a watch_failed event, the policy's
// alert in status and metrics), and the rotation ends done with it.
func (r *run) watch(ctx context.Context) (stepResult, error) {
	now := r.e.now()
	if r.p.Revoke.Watch <= 0 || len(r.rec.OldKeyIDs) == 0 || r.rec.RevokedAt.IsZero() {
		return r.finish(now, ""), nil
	}
	if err := r.flush(ctx); err != nil {
		return stepResult{}, err
	}
	var err error
	pctx := r.probeContext(ctx, StepWatch)
	for _, pb := range r.p.Probes {
		if pb.Target != probes.TargetDependent {
			continue
		}
		if err = r.runProbe(pctx, pb, r.key); err != nil {
			err = fmt.Errorf("probe %s (%s) failed %s after the old key was revoked: %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), now.Sub(r.rec.RevokedAt).Round(time.Second), err)
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return stepResult{}, ctx.Err()
		}
		err = r.clean(err)
		r.emit(ctx, StepWatch, ResultFailed, 0, err)
		return r.finish(now, err.Error()), nil
	}
	if until := r.rec.RevokedAt.Add(r.p.Revoke.Watch); now.Before(until) {
		return stepResult{wake: minTime(until, now.Add(r.e.opts.RecheckInterval))}, nil
	}
	return r.finish(now, ""), nil
}

func describeWatch(p *policies.Policy) []string {
	if p.Revoke.Watch <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("watch %s after revocation with dependent probes (alert on failure)", p.Revoke.Watch)}
}

// probeContext tells the probes of step where they run and which key is
// being replaced (plugin.ProbeInfo), for queries about the old key.
func (r *run) probeContext(ctx context.Context, step Step) context.Context {
	info := plugin.ProbeInfo{RotationID: r.rec.ID, Phase: string(step)}
	if len(r.rec.OldKeyIDs) > 0 {
		info.OldKeyID = r.rec.OldKeyIDs[0]
	}
	return plugin.WithProbeInfo(ctx, info)
}

// finish ends the rotation as done. alert, when not empty, is what
// dependents showed after revocation; it stays on the policy until a later
// rotation commits.
func (r *run) finish(now time.Time, alert string) stepResult {
	r.rec.Result = string(OutcomeDone)
	r.rec.FinishedAt = now
	r.rec.Error = alert
	return stepResult{
		quiet: true,
		apply: func(st *PolicyState) {
			st.LastSuccess = now
			st.LastResult = string(OutcomeDone)
			st.LastError = alert
			st.Failures = 0
			st.NotBefore = time.Time{}
			st.Stuck = false
			if alert != "" {
				st.Alert = alert
			}
			st.finish(r.rec)
		},
		then: func(ctx context.Context) {
			r.emit(ctx, StepDone, ResultOK, now.Sub(r.rec.StartedAt), nil)
		},
	}
}
