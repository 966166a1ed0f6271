package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/secret"
)

// run is one rotation being advanced.
type run struct {
	e   *Engine
	p   *policies.Policy
	rec Record
	key plugin.Key
	log zerolog.Logger
	// auditErr is the first failed audit write of this call; the rotation
	// takes no irreversible step after it.
	auditErr error
	// dirty is set when rec, or the policy state (pending), changed
	// without being journaled (later): the next save carries the change,
	// and flush makes it before the next external effect.
	dirty   bool
	pending []func(*PolicyState)
	// changed is set when what later left is more than moves between
	// steps that acted on nothing.
	changed bool
}

func (r *run) rotation() plugin.Rotation {
	return plugin.Rotation{ID: r.rec.ID, Policy: r.p.Name, Generation: r.rec.Generation, StartedAt: r.rec.StartedAt, KeyTTL: r.p.Schedule.KeyTTL}
}

func (r *run) event(step Step, res Result, err error) Event {
	ev := Event{Policy: r.p.Name, RotationID: r.rec.ID, Generation: r.rec.Generation, Step: step, Result: res, Manual: r.rec.Manual, Labels: r.p.Labels}
	if r.rec.Compromised {
		ev.Reason, ev.Note = ReasonCompromised, r.rec.Note
	}
	if r.rec.NewKeyID != "" {
		ev.NewKeyID = secret.Mask(r.rec.NewKeyID)
	}
	if len(r.rec.OldKeyIDs) > 0 {
		ev.OldKeyID = secret.Mask(r.rec.OldKeyIDs[0])
	}
	if len(r.rec.Sinks) > 0 {
		ev.Sinks = map[string]string{}
		for loc, s := range r.rec.Sinks {
			v := s.Promoted
			if v == "" {
				v = s.Staged
			}
			if v == "" {
				v = s.Prev
			}
			ev.Sinks[loc] = string(v)
		}
	}
	if err != nil {
		ev.Error = r.clean(err).Error()
	}
	return ev
}

// cleanErr is an error whose text went through secret.Scrub; the chain
// below it stays for errors.Is and errors.As.
type cleanErr struct {
	msg string
	err error
}

func (c cleanErr) Error() string { return c.msg }
func (c cleanErr) Unwrap() error { return c.err }

// clean is the one sanitiser of the engine: every error that reaches the
// journal, the log, events (audit log, metrics, notifications), status or
// an Outcome goes through it. It removes the values of the key this
// process holds, control characters, and bounds the length.
func (r *run) clean(err error) error {
	if err == nil {
		return nil
	}
	return cleanErr{msg: secret.Scrub(err.Error(), r.key.Value), err: err}
}

// emit logs one line per event and hands the event to the audit recorder
// and the observers. The line names the step and its result once, the
// duration with its unit, the masked key ids the step acts on, and
// manual=true for rotations an operator started.
func (r *run) emit(ctx context.Context, step Step, res Result, d time.Duration, err error) {
	ev := r.event(step, res, err)
	ev.Duration = d
	ev.Time = r.e.now()
	lg := r.log.Info()
	switch {
	case res == ResultStuck:
		lg = r.log.Error()
	case err != nil:
		lg = r.log.Warn()
	}
	lg = lg.Str("step", string(step)).Str("result", string(res))
	if d > 0 {
		lg = lg.Str("duration", d.Round(time.Millisecond).String())
	}
	if ev.NewKeyID != "" {
		lg = lg.Str("new_key", ev.NewKeyID)
	}
	if ev.OldKeyID != "" && actsOnOldKey(step) {
		lg = lg.Str("old_key", ev.OldKeyID)
	}
	if r.rec.Manual {
		lg = lg.Bool("manual", true)
	}
	if err != nil {
		lg = lg.Str("error", ev.Error)
	}
	lg.Msg("rotation")
	if a := r.e.opts.Audit; a != nil {
		if aerr := a.Record(ctx, ev); aerr != nil && r.auditErr == nil {
			r.auditErr = aerr
			r.log.Error().Str("step", string(step)).Str("error", aerr.Error()).Msg("audit log write failed: the rotation takes no irreversible step until the audit log works")
		}
	}
	r.e.emit(ctx, ev)
}

// actsOnOldKey reports whether a step's events concern the old key.
func actsOnOldKey(s Step) bool {
	switch s {
	case StepCreate, StepStage, StepTest, StepPromote, StepReload, StepVerify:
		return false
	}
	return true
}

// intend records that an irreversible step is about to act (a started
// event, written to the audit log synchronously) and refuses the step
// when that record, or any earlier one of this call, was not written: the
// audit log holds every irreversible act before it happens.
func (r *run) intend(ctx context.Context, step Step) error {
	r.emit(ctx, step, ResultStarted, 0, nil)
	return r.auditOK(step)
}

// auditOK refuses an irreversible step after a failed audit write.
func (r *run) auditOK(step Step) error {
	if r.auditErr == nil {
		return nil
	}
	return fmt.Errorf("%w: the rotation stops before %s: %w", ErrAudit, step, r.auditErr)
}

// save journals the record (and any change to the policy state), with
// whatever later left unjournaled.
func (r *run) save(ctx context.Context, fn func(st *PolicyState)) error {
	r.rec.UpdatedAt = r.e.now()
	_, err := r.e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		rec := r.rec
		st.Active = &rec
		for _, p := range r.pending {
			p(st)
		}
		if fn != nil {
			fn(st)
		}
		return nil
	})
	if err == nil {
		r.dirty, r.changed, r.pending = false, false, nil
	}
	return err
}

// later records a change of the record (and fn's change of the policy
// state) to be journaled by the next save: for a move with nothing
// outside rekey between it and that save. Every external effect is
// preceded by a save or a flush, so its intent is still durable before it.
func (r *run) later(fn func(st *PolicyState), changed bool) {
	r.dirty = true
	r.changed = r.changed || changed || fn != nil
	if fn != nil {
		r.pending = append(r.pending, fn)
	}
}

// flush journals what later left, before an external effect or when the
// call returns.
func (r *run) flush(ctx context.Context) error {
	if !r.dirty {
		return nil
	}
	return r.save(context.WithoutCancel(ctx), nil)
}

func (r *run) sinkKey(sb policies.SinkBlock) plugin.Key {
	if sb.Fields == nil || r.key.Value == nil {
		return r.key
	}
	k := r.key
	k.Value = secret.Fields{}
	for dest, src := range sb.Fields {
		if v, ok := r.key.Value[src]; ok {
			k.Value[dest] = v
		}
	}
	return k
}

// outcome reports where the rotation stands.
func (r *run) outcome(v Verdict, err error, next time.Time) Outcome {
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: v, Err: r.clean(err), Next: next}
}

// announceWait reports that the rotation waits at step, once per wait.
func (r *run) announceWait(ctx context.Context, step Step) {
	if r.rec.Announced == step {
		return
	}
	r.rec.Announced = step
	if err := r.save(ctx, nil); err != nil {
		r.log.Warn().Str("step", string(step)).Str("error", err.Error()).Msg("journaling the wait")
	}
	r.emit(ctx, step, ResultWaiting, 0, nil)
}
