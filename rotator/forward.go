package rotator

import (
	"context"
	"errors"
	"fmt"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// start plans capacity, journals the intent of a new rotation and drives
// it from the create step.
func (e *Engine) start(ctx context.Context, p *policies.Policy, st PolicyState, manual bool) (Outcome, error) {
	now := e.now()
	r := &run{e: e, p: p, rec: Record{ID: NewRotationID(), Generation: st.Generation + 1, Manual: manual, Step: StepDue, StartedAt: now}}
	markCompromised(ctx, &r.rec)
	r.log = e.log.With().Str("policy", p.Name).Str("rotation_id", r.rec.ID).Logger()
	prov := p.Provider.Provider

	// Capacity and old keys, before anything is journaled or changed.
	plan := CapacityPlan{}
	if l, ok := providers.AsLister(prov); ok {
		var keys []plugin.KeyInfo
		err := e.retry(ctx, p, func(ctx context.Context) (err error) { keys, err = l.List(ctx); return err })
		if err != nil {
			return e.failStart(ctx, r, fmt.Errorf("listing keys at provider: %w", err))
		}
		maxKeys := 0
		if c, ok := providers.AsCapacity(prov); ok {
			maxKeys = c.MaxKeys()
		}
		if plan, err = PlanCapacity(keys, maxKeys, st); err != nil {
			return e.failStart(ctx, r, err)
		}
		for _, k := range plan.Unknown {
			r.log.Warn().Str("key", secret.Mask(k.ID)).Msg("the provider holds a key unknown to rekey's journal; it is left alone")
		}
		for _, id := range plan.DeleteFirst {
			if err := e.retry(ctx, p, func(ctx context.Context) error { return prov.Delete(ctx, id) }); err != nil {
				return e.failStart(ctx, r, fmt.Errorf("deleting retired key %s to make room: %w", secret.Mask(id), err))
			}
			if _, err := e.journal.Update(ctx, p.Name, func(s *PolicyState) error { s.Retired = remove(s.Retired, id); return nil }); err != nil {
				return Outcome{}, err
			}
		}
	} else if st.CurrentKeyID != "" {
		plan.Old = []string{st.CurrentKeyID}
	}
	r.rec.OldKeyIDs = plan.Old
	r.rec.NoPreviousKey = st.CurrentKeyID == "" && len(plan.Old) == 0 ||
		st.CurrentKeyUnverified && (len(plan.Old) == 0 || len(plan.Old) == 1 && plan.Old[0] == st.CurrentKeyID)

	r.rec.Step = StepCreate
	r.rec.IntentAt = e.now()
	if err := r.save(ctx, func(s *PolicyState) {
		s.Generation = r.rec.Generation
		s.LastAttempt = now
	}); err != nil {
		return Outcome{}, err
	}
	defer e.takeLive(r.rec.ID, true)
	return r.drive(ctx)
}

func (e *Engine) failStart(ctx context.Context, r *run, cause error) (Outcome, error) {
	cause = r.clean(cause)
	r.rec.Result = string(StepFailed)
	r.rec.Error = cause.Error()
	r.rec.FinishedAt = e.now()
	st, err := e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		st.Generation = r.rec.Generation
		st.LastAttempt = r.rec.StartedAt
		if ctx.Err() != nil {
			// Stopped from outside before anything changed: not a failure.
			st.LastError = cause.Error()
		} else {
			e.recordFailure(st, r.p, cause)
		}
		st.finish(r.rec)
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	r.emit(ctx, StepFailed, ResultFailed, 0, cause)
	if st.Stuck {
		r.emit(ctx, StepFailed, ResultStuck, 0, cause)
	}
	r.rec.Step = StepFailed
	return r.outcome(OutcomeFailed, cause, st.NotBefore), nil
}

func (e *Engine) recordFailure(st *PolicyState, p *policies.Policy, cause error) {
	st.Failures++
	st.LastResult = string(OutcomeFailed)
	st.LastError = cause.Error()
	st.NotBefore = e.now().Add(Backoff(st.Failures, e.opts.BackoffBase, e.opts.BackoffMax, e.rnd()))
	if st.Failures >= p.MaxFailures {
		st.Stuck = true
	}
}

// create asks the provider for a new key; the intent is journaled already.
func (r *run) create(ctx context.Context) (stepResult, error) {
	e := r.e
	r.emit(ctx, StepCreate, ResultStarted, 0, nil)
	if err := e.fp.hit(ctx, "create.before"); err != nil {
		return stepResult{}, err
	}
	cctx, cancel := withStepTimeout(ctx, r.p)
	key, err := r.p.Provider.Provider.Create(cctx, r.rotation())
	cancel()
	if err != nil {
		return stepResult{}, fmt.Errorf("creating key: %w", err)
	}
	if key.ID == "" {
		return stepResult{}, errors.New("creating key: the provider returned no key id")
	}
	seen := e.now()
	if key.CreatedAt.IsZero() {
		key.CreatedAt = seen
	}
	if key.ExpiresAt.IsZero() && r.p.Schedule.KeyTTL > 0 {
		// The provider was asked for this lifetime and did not say when the
		// key expires: count it from the creation time (the earlier bound).
		key.ExpiresAt = key.CreatedAt.Add(r.p.Schedule.KeyTTL)
	}
	if _, warning := KeyAgeFrom(key.CreatedAt, seen, seen); warning != "" {
		r.log.Warn().Str("key", secret.Mask(key.ID)).Msg(warning)
	}
	r.key = key
	e.mu.Lock()
	e.live[r.rec.ID] = key
	e.mu.Unlock()
	if err := e.fp.hit(ctx, "create.after"); err != nil {
		return stepResult{}, err
	}
	r.rec.NewKeyID = key.ID
	r.rec.NewKeyCreated = key.CreatedAt
	r.rec.NewKeySeen = seen
	r.rec.NewKeyExpires = key.ExpiresAt
	return stepResult{}, nil
}

func describeCreate(p *policies.Policy) []string {
	prov := p.Provider.Provider
	var s []string
	if _, ok := providers.AsCapacity(prov); ok {
		s = append(s, "check capacity at "+prov.Target())
	}
	return append(s, "create a new key at "+prov.Target())
}

func (r *run) stage(ctx context.Context) (stepResult, error) {
	if r.rec.Sinks == nil {
		r.rec.Sinks = map[string]SinkRecord{}
	}
	for _, sb := range r.p.Sinks {
		loc := sb.Sink.Location()
		sr := r.rec.Sinks[loc]
		if !sr.PrevRead {
			var v sinks.Version
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { v, err = sb.Sink.Current(ctx); return err }); err != nil {
				return stepResult{}, fmt.Errorf("reading current version of %s: %w", loc, err)
			}
			sr = SinkRecord{PrevRead: true, State: sinks.State{Prev: v}}
			r.rec.Sinks[loc] = sr
			if err := r.save(ctx, nil); err != nil {
				return stepResult{}, err
			}
		}
		if err := r.sinkCall(ctx, StepStage, "staging to", sb, func(ctx context.Context, st sinks.State) (sinks.Version, error) {
			return sb.Sink.Stage(ctx, r.rotation(), r.sinkKey(sb), st)
		}, func(sr *SinkRecord, v sinks.Version) { sr.Staged = v }); err != nil {
			return stepResult{}, err
		}
	}
	return stepResult{}, nil
}

func describeStage(p *policies.Policy) []string {
	var s []string
	for _, sb := range p.Sinks {
		s = append(s, "stage in "+sb.Sink.Location())
	}
	return s
}

// sinkCall runs one sink operation between its failpoints, retrying it
// within the step timeout, and journals the version it returns.
func (r *run) sinkCall(ctx context.Context, step Step, verb string, sb policies.SinkBlock, call func(context.Context, sinks.State) (sinks.Version, error), set func(*SinkRecord, sinks.Version)) error {
	if err := r.flush(ctx); err != nil {
		return err
	}
	loc := sb.Sink.Location()
	sr := r.rec.Sinks[loc]
	if err := r.e.fp.hit(ctx, string(step)+".before"); err != nil {
		return err
	}
	var v sinks.Version
	if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { v, err = call(ctx, sr.State); return err }); err != nil {
		return fmt.Errorf("%s %s: %w", verb, loc, err)
	}
	if err := r.e.fp.hit(ctx, string(step)+".after"); err != nil {
		return err
	}
	set(&sr, v)
	r.rec.Sinks[loc] = sr
	r.later(nil, true)
	return nil
}

func (r *run) test(ctx context.Context) (stepResult, error) {
	return r.probe(ctx, probes.TargetKey, StepTest)
}

func describeTest(p *policies.Policy) []string {
	return describeProbes(p, probes.TargetKey, "test the new key")
}

func (r *run) verify(ctx context.Context) (stepResult, error) {
	res, err := r.probe(ctx, probes.TargetDependent, StepVerify)
	if r.forcedVerify(ctx, err) {
		return stepResult{quiet: true}, nil
	}
	return res, err
}

func describeVerify(p *policies.Policy) []string {
	s := describeProbes(p, probes.TargetDependent, "verify dependents")
	if len(p.Probes) == 0 {
		s = append(s, "no probes: rotate_blind = true (the new key is not checked)")
	}
	return s
}

func describeProbes(p *policies.Policy, target probes.Target, what string) []string {
	var s []string
	for _, pb := range p.Probes {
		if pb.Target == target {
			line := fmt.Sprintf("%s with probe %s (up to %s, %d consecutive)", what, pb.Kind, pb.Timeout, max(pb.Successes, 1))
			if d, ok := pb.Probe.(probes.Describer); ok {
				line += ": " + d.Describe()
			}
			s = append(s, line)
		}
	}
	return s
}

// probe runs every probe of a target against the new key.
func (r *run) probe(ctx context.Context, target probes.Target, step Step) (stepResult, error) {
	if err := r.e.fp.hit(ctx, string(step)+".before"); err != nil {
		return stepResult{}, err
	}
	n := 0
	for _, pb := range r.p.Probes {
		if pb.Target == target {
			// Probes may take long: the journal (and rekey status) shows
			// the step while they run.
			if err := r.flush(ctx); err != nil {
				return stepResult{}, err
			}
			break
		}
	}
	for _, pb := range r.p.Probes {
		if pb.Target != target {
			continue
		}
		n++
		if err := r.runProbe(r.probeContext(ctx, step), pb, r.key); err != nil {
			return stepResult{}, fmt.Errorf("probe %s (%s): %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err)
		}
	}
	if err := r.e.fp.hit(ctx, string(step)+".after"); err != nil {
		return stepResult{}, err
	}
	return stepResult{quiet: n == 0}, nil
}

func posString(file string, line int) string { return fmt.Sprintf("%s:%d", file, line) }

func (r *run) promote(ctx context.Context) (stepResult, error) {
	if !r.rec.Promoted {
		r.rec.Promoted = true
		if err := r.save(ctx, nil); err != nil {
			return stepResult{}, err
		}
	}
	for _, sb := range r.p.Sinks {
		loc := sb.Sink.Location()
		if r.rec.Sinks[loc].Promoted != "" {
			continue
		}
		if err := r.sinkCall(ctx, StepPromote, "promoting in", sb, func(ctx context.Context, st sinks.State) (sinks.Version, error) {
			return sb.Sink.Promote(ctx, r.rotation(), r.sinkKey(sb), st)
		}, func(sr *SinkRecord, v sinks.Version) { sr.Promoted = v }); err != nil {
			return stepResult{}, err
		}
	}
	return stepResult{}, nil
}

func describePromote(p *policies.Policy) []string {
	var s []string
	for _, sb := range p.Sinks {
		s = append(s, "promote in "+sb.Sink.Location()+" (check-and-set, read back)")
	}
	return s
}

func (r *run) reload(ctx context.Context) (stepResult, error) {
	if err := r.runReloads(ctx); err != nil {
		return stepResult{}, err
	}
	return stepResult{quiet: len(r.p.Reloads) == 0}, nil
}

func describeReload(p *policies.Policy) []string {
	var s []string
	for _, rb := range p.Reloads {
		s = append(s, "reload dependents with "+rb.Kind)
	}
	return s
}

func (r *run) runReloads(ctx context.Context) error {
	for _, rb := range r.p.Reloads {
		if err := r.flush(ctx); err != nil {
			return err
		}
		if err := r.e.fp.hit(ctx, "reload.before"); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, rb.Timeout)
		err := rb.Reloader.Reload(rctx, r.rotation(), r.key)
		cancel()
		if err != nil {
			return fmt.Errorf("reload %s: %w", rb.Kind, err)
		}
		if err := r.e.fp.hit(ctx, "reload.after"); err != nil {
			return err
		}
	}
	return nil
}

// commit journals that the new key is current: the point of no return.
func (r *run) commit(ctx context.Context) (stepResult, error) {
	if err := r.e.fp.hit(ctx, "commit.before"); err != nil {
		return stepResult{}, err
	}
	if err := r.intend(ctx, StepCommit); err != nil {
		return stepResult{}, err
	}
	now := r.e.now()
	r.rec.CommittedAt = now
	created, seen := r.rec.NewKeyCreated, r.rec.NewKeySeen
	if created.IsZero() {
		created = now
	}
	if seen.IsZero() {
		seen = now
	}
	return stepResult{
		apply: func(st *PolicyState) {
			st.CurrentKeyID = r.rec.NewKeyID
			st.CurrentKeyCreated = created
			st.CurrentKeySeen = seen
			st.CurrentKeyExpires = r.rec.NewKeyExpires
			st.CurrentKeyUnverified = false
			st.ExpiryNotified, st.ExpiredNotified = 0, false
			st.Alert = ""
			for _, id := range r.rec.OldKeyIDs {
				if !contains(st.Retired, id) {
					st.Retired = append(st.Retired, id)
				}
			}
		},
		then: func(ctx context.Context) {
			r.e.takeLive(r.rec.ID, true)
			r.finishSinks(ctx)
			if err := r.e.fp.hit(ctx, "commit.after"); err != nil {
				r.log.Warn().Err(err).Msg("after commit: continuing")
			}
		},
	}, nil
}

// finishSinks tells the sinks that keep bookkeeping for a rotation
// (sinks.Finisher) that it ended: committed or rolled back. A failure is
// logged; the sink cleans up at its next rotation.
func (r *run) finishSinks(ctx context.Context) {
	for _, sb := range r.p.Sinks {
		f, ok := sb.Sink.(sinks.Finisher)
		if !ok {
			continue
		}
		fctx, cancel := withStepTimeout(ctx, r.p)
		err := f.Finish(fctx, r.rotation())
		cancel()
		if err != nil {
			r.log.Warn().Str("sink", sb.Sink.Location()).Err(r.clean(err)).Msg("sink bookkeeping not cleaned up; it is retried at the next rotation")
		}
	}
}

func describeCommit(*policies.Policy) []string { return []string{"commit: the new key is current"} }
