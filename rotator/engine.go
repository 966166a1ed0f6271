// Package rotator is rekey's engine: it decides when each policy is due,
// runs the rotation protocol of rotation-protocol.md step by step, journals
// each step before and after its external effect, rolls back before commit
// and rolls forward after it, and reconciles unfinished rotations on start.
package rotator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Options configure an Engine.
type Options struct {
	Journal   Journal
	Logger    zerolog.Logger
	Observers []Observer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand returns a number in [0,1) for backoff jitter; default math/rand.
	Rand func() float64
	// BackoffBase and BackoffMax bound the delay between failed attempts
	// of a policy (defaults 1m and 6h).
	BackoffBase, BackoffMax time.Duration
	// RecheckInterval is how often a draining or soaking rotation is looked
	// at again (default 1m; never more than the remaining wait).
	RecheckInterval time.Duration
	// Failpoints enables failpoints (tests); when nil, FailpointEnv is read.
	Failpoints map[string]string
}

// Engine runs rotations. One Engine owns a journal; the daemon and the
// on-demand CLI run the very same code.
type Engine struct {
	opts     Options
	journal  Journal
	log      zerolog.Logger
	now      func() time.Time
	rnd      func() float64
	fp       *failpoints
	mu       sync.Mutex
	policies map[string]*policies.Policy
	order    []string
	locks    map[string]*sync.Mutex
	// live holds the values of keys created by this process, by rotation
	// id, for as long as their rotation is before commit. Never persisted.
	live map[string]plugin.Key

	obsMu     sync.RWMutex
	observers []observerEntry
	obsSeq    int

	wake     chan struct{}
	lastLoop time.Time
}

// New returns an engine over the given journal.
func New(opts Options) (*Engine, error) {
	if opts.Journal == nil {
		return nil, errors.New("rotator: a journal is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = mrand.Float64
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Minute
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 6 * time.Hour
	}
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = time.Minute
	}
	e := &Engine{
		opts:     opts,
		journal:  opts.Journal,
		log:      opts.Logger,
		now:      opts.Now,
		rnd:      opts.Rand,
		policies: map[string]*policies.Policy{},
		locks:    map[string]*sync.Mutex{},
		live:     map[string]plugin.Key{},
		wake:     make(chan struct{}, 1),
	}
	for _, o := range opts.Observers {
		e.AddObserver(o)
	}
	if opts.Failpoints != nil {
		e.fp = &failpoints{action: opts.Failpoints, hits: map[string]int{}}
	} else {
		fp, err := failpointsFromEnv()
		if err != nil {
			return nil, err
		}
		e.fp = fp
	}
	if names := e.fp.enabled(); len(names) > 0 {
		e.log.Warn().Strs("failpoints", names).Msg("failpoints are enabled: this process will crash or fail on purpose (tests only)")
	}
	return e, nil
}

type observerEntry struct {
	id int
	o  Observer
}

// AddObserver registers an observer for every later event; the returned
// function removes it.
func (e *Engine) AddObserver(o Observer) (remove func()) {
	e.obsMu.Lock()
	defer e.obsMu.Unlock()
	e.obsSeq++
	id := e.obsSeq
	e.observers = append(e.observers, observerEntry{id, o})
	return func() {
		e.obsMu.Lock()
		defer e.obsMu.Unlock()
		for i, en := range e.observers {
			if en.id == id {
				e.observers = append(e.observers[:i:i], e.observers[i+1:]...)
				return
			}
		}
	}
}

// SetPolicies replaces the policy set atomically. Rotations in flight
// finish under the policy they started with.
func (e *Engine) SetPolicies(ps []*policies.Policy) {
	m := make(map[string]*policies.Policy, len(ps))
	order := make([]string, 0, len(ps))
	for _, p := range ps {
		m[p.Name] = p
		order = append(order, p.Name)
	}
	e.mu.Lock()
	e.policies = m
	e.order = order
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Policy returns the named policy of the current set.
func (e *Engine) Policy(name string) (*policies.Policy, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.policies[name]
	return p, ok
}

// PolicyNames returns the names of the current set in load order.
func (e *Engine) PolicyNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.order...)
}

func (e *Engine) policyLock(name string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.locks[name]
	if !ok {
		l = &sync.Mutex{}
		e.locks[name] = l
	}
	return l
}

// ErrUnknownPolicy reports a policy name that is not configured.
var ErrUnknownPolicy = errors.New("no such policy")

// Outcome is the result of advancing one policy.
type Outcome struct {
	Policy     string
	RotationID string
	// Step is where the rotation stands now (done, rolled_back, drain...).
	Step Step
	// Result is "done", "committed" (waiting to revoke), "rolled_back",
	// "failed", "in_progress", "not_due" or "stuck".
	Result string
	// Err is why a rotation failed or rolled back.
	Err error
	// Next is when the policy should be looked at again.
	Next time.Time
	// Decision is the scheduling decision when no rotation ran.
	Decision Decision
}

// RotateOptions tune an on-demand rotation.
type RotateOptions struct {
	// UntilDone keeps going through drain, soak and revoke, waiting as the
	// revoke rules say; otherwise Rotate returns after commit and the
	// daemon (or the next run) finishes the revocation.
	UntilDone bool
}

// Rotate starts a rotation of the named policy now, whether or not it is
// due; a stuck policy is released. If a rotation is already in flight, it
// is continued instead.
func (e *Engine) Rotate(ctx context.Context, name string, o RotateOptions) (Outcome, error) {
	p, ok := e.Policy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	l := e.policyLock(name)
	l.Lock()
	defer l.Unlock()
	// The scheduler (if running) must learn the rotation's next wake time.
	defer e.Trigger()
	if _, err := e.journal.Update(ctx, name, func(st *PolicyState) error {
		st.Stuck = false
		st.NotBefore = time.Time{}
		return nil
	}); err != nil {
		return Outcome{}, err
	}
	for {
		out, err := e.advanceLocked(ctx, p, true, true)
		if err != nil || !o.UntilDone || out.Result != "committed" && out.Result != "in_progress" {
			return out, err
		}
		if err := sleepUntil(ctx, e.now, out.Next); err != nil {
			return out, err
		}
	}
}

// Advance moves the named policy forward as far as it can go now: it
// continues a rotation in flight, or starts one if the policy is due.
func (e *Engine) Advance(ctx context.Context, name string) (Outcome, error) {
	p, ok := e.Policy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	l := e.policyLock(name)
	l.Lock()
	defer l.Unlock()
	return e.advanceLocked(ctx, p, false, false)
}

func (e *Engine) advanceLocked(ctx context.Context, p *policies.Policy, force, manual bool) (Outcome, error) {
	st, _, err := e.journal.Get(ctx, p.Name)
	if err != nil {
		return Outcome{}, err
	}
	st.Policy = p.Name
	if st.Active == nil {
		if !force {
			d := Decide(p, st, e.facts(ctx, p, st), e.now())
			if !d.Due {
				res := "not_due"
				if d.Reason == ReasonStuck {
					res = "stuck"
				}
				return Outcome{Policy: p.Name, Result: res, Decision: d, Next: d.At}, nil
			}
			e.log.Info().Str("policy", p.Name).Str("reason", d.Reason).Msg(d.Message)
		}
		return e.start(ctx, p, st, manual)
	}
	if st.Stuck && !force && st.Active.Committed() {
		// Dependents failed during the soak and the old key was re-activated:
		// it is not deactivated again until an operator runs rekey rotate.
		msg := fmt.Sprintf("stuck at step %s (%s); fix the cause, then run: rekey rotate %s", st.Active.Step, st.LastError, p.Name)
		return Outcome{Policy: p.Name, RotationID: st.Active.ID, Step: st.Active.Step, Result: "stuck", Decision: Decision{Reason: ReasonStuck, Message: msg}}, nil
	}
	r := &run{e: e, p: p, rec: *st.Active, log: e.log.With().Str("policy", p.Name).Str("rotation_id", st.Active.ID).Logger()}
	if key, ok := e.takeLive(st.Active.ID, false); ok {
		r.key = key
	} else {
		r.key = plugin.Key{ID: st.Active.NewKeyID, CreatedAt: st.Active.NewKeyCreated}
	}
	if !r.rec.Committed() && r.rec.Step != StepRollback {
		// A rotation before commit found in the journal did not finish in
		// this call: the process stopped. Its key value is gone; roll back.
		r.log.Warn().Str("step", string(r.rec.Step)).Msg("unfinished rotation before commit: rolling back")
		return r.rollback(ctx, fmt.Errorf("interrupted at step %s (process stopped)", r.rec.Step))
	}
	return r.resume(ctx)
}

func (e *Engine) takeLive(id string, remove bool) (plugin.Key, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.live[id]
	if remove {
		delete(e.live, id)
	}
	return k, ok
}

func (e *Engine) facts(ctx context.Context, p *policies.Policy, st PolicyState) Facts {
	if !st.CurrentKeyCreated.IsZero() {
		return Facts{}
	}
	l, ok := p.Provider.Provider.(providers.Lister)
	if !ok {
		return Facts{}
	}
	keys, err := l.List(ctx)
	if err != nil || len(keys) != 1 {
		return Facts{}
	}
	return Facts{ExistingKeyCreated: keys[0].CreatedAt}
}

// NewRotationID returns a random RFC 4122 version 4 UUID.
func NewRotationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (e *Engine) emit(ctx context.Context, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.obsMu.RLock()
	obs := append([]observerEntry(nil), e.observers...)
	e.obsMu.RUnlock()
	for _, en := range obs {
		en.o.Observe(ctx, ev)
	}
}

// run is one rotation being advanced.
type run struct {
	e   *Engine
	p   *policies.Policy
	rec Record
	key plugin.Key
	log zerolog.Logger
}

func (r *run) rotation() plugin.Rotation {
	return plugin.Rotation{ID: r.rec.ID, Policy: r.p.Name, Generation: r.rec.Generation, StartedAt: r.rec.StartedAt}
}

func (r *run) event(step Step, res Result, err error) Event {
	ev := Event{Policy: r.p.Name, RotationID: r.rec.ID, Generation: r.rec.Generation, Step: step, Result: res, Manual: r.rec.Manual}
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
		ev.Error = err.Error()
	}
	return ev
}

func (r *run) emit(ctx context.Context, step Step, res Result, d time.Duration, err error) {
	ev := r.event(step, res, err)
	ev.Duration = d
	lg := r.log.Info()
	if err != nil {
		lg = r.log.Warn().Str("error", err.Error())
	}
	lg = lg.Str("step", string(step)).Str("result", string(res))
	if d > 0 {
		lg = lg.Dur("duration", d)
	}
	if ev.NewKeyID != "" {
		lg = lg.Str("new_key", ev.NewKeyID)
	}
	lg.Msg("step " + string(step) + " " + string(res))
	r.e.emit(ctx, ev)
}

// save journals the record (and any change to the policy state).
func (r *run) save(ctx context.Context, fn func(st *PolicyState)) error {
	r.rec.UpdatedAt = r.e.now()
	_, err := r.e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		rec := r.rec
		st.Active = &rec
		if fn != nil {
			fn(st)
		}
		return nil
	})
	return err
}

func (r *run) setStep(ctx context.Context, s Step) error {
	r.rec.Step = s
	return r.save(ctx, nil)
}

func (e *Engine) start(ctx context.Context, p *policies.Policy, st PolicyState, manual bool) (Outcome, error) {
	now := e.now()
	r := &run{e: e, p: p, rec: Record{ID: NewRotationID(), Generation: st.Generation + 1, Manual: manual, Step: StepDue, StartedAt: now}}
	r.log = e.log.With().Str("policy", p.Name).Str("rotation_id", r.rec.ID).Logger()
	prov := p.Provider.Provider

	// Capacity and old keys, before anything is journaled or changed.
	plan := CapacityPlan{}
	if l, ok := prov.(providers.Lister); ok {
		keys, err := l.List(ctx)
		if err != nil {
			return e.failStart(ctx, r, fmt.Errorf("listing keys at provider: %w", err))
		}
		maxKeys := 0
		if c, ok := prov.(providers.Capacity); ok {
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

	// Journal the intent, then create.
	r.rec.Step = StepCreate
	r.rec.IntentAt = e.now()
	if err := r.save(ctx, func(s *PolicyState) {
		s.Generation = r.rec.Generation
		s.LastAttempt = now
	}); err != nil {
		return Outcome{}, err
	}
	r.emit(ctx, StepCreate, ResultStarted, 0, nil)
	t0 := e.now()
	if err := e.fp.hit(ctx, "create.before"); err != nil {
		return r.rollback(ctx, err)
	}
	key, err := prov.Create(ctx, r.rotation())
	if err != nil {
		return r.rollback(ctx, fmt.Errorf("creating key: %w", err))
	}
	if key.ID == "" {
		return r.rollback(ctx, errors.New("creating key: the provider returned no key id"))
	}
	if key.CreatedAt.IsZero() {
		key.CreatedAt = e.now()
	}
	r.key = key
	e.mu.Lock()
	e.live[r.rec.ID] = key
	e.mu.Unlock()
	defer e.takeLive(r.rec.ID, true)
	if err := e.fp.hit(ctx, "create.after"); err != nil {
		return r.rollback(ctx, err)
	}
	r.rec.NewKeyID = key.ID
	r.rec.NewKeyCreated = key.CreatedAt
	r.rec.Step = StepStage
	if err := r.save(ctx, nil); err != nil {
		return Outcome{}, err
	}
	r.emit(ctx, StepCreate, ResultOK, e.now().Sub(t0), nil)
	return r.resume(ctx)
}

func (e *Engine) failStart(ctx context.Context, r *run, cause error) (Outcome, error) {
	r.rec.Result = string(StepFailed)
	r.rec.Error = cause.Error()
	r.rec.FinishedAt = e.now()
	st, err := e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		st.Generation = r.rec.Generation
		st.LastAttempt = r.rec.StartedAt
		e.recordFailure(st, r.p, cause)
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
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: StepFailed, Result: "failed", Err: cause, Next: st.NotBefore}, nil
}

func (e *Engine) recordFailure(st *PolicyState, p *policies.Policy, cause error) {
	st.Failures++
	st.LastResult = "failed"
	st.LastError = cause.Error()
	st.NotBefore = e.now().Add(Backoff(st.Failures, e.opts.BackoffBase, e.opts.BackoffMax, e.rnd()))
	maxF := p.MaxFailures
	if maxF <= 0 {
		maxF = 5
	}
	if st.Failures >= maxF {
		st.Stuck = true
	}
}

// resume runs the journaled rotation from its current step.
func (r *run) resume(ctx context.Context) (Outcome, error) {
	for {
		var err error
		var wait time.Time
		step := r.rec.Step
		t0 := r.e.now()
		switch step {
		case StepStage:
			err = r.stage(ctx)
		case StepTest:
			err = r.probe(ctx, probes.TargetKey, StepTest, StepPromote)
		case StepPromote:
			err = r.promote(ctx)
		case StepReload:
			err = r.reload(ctx, StepVerify)
		case StepVerify:
			err = r.probe(ctx, probes.TargetDependent, StepVerify, StepCommit)
		case StepCommit:
			err = r.commit(ctx)
		case StepDrain:
			wait, err = r.drain(ctx)
		case StepDeactivate:
			err = r.deactivate(ctx)
		case StepSoak:
			wait, err = r.soak(ctx)
		case StepRevoke:
			return r.revoke(ctx)
		case StepRollback:
			return r.rollback(ctx, errors.New(r.rec.Error))
		case StepDone:
			return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: StepDone, Result: "done"}, nil
		default:
			return r.rollback(ctx, fmt.Errorf("unexpected journaled step %q", step))
		}
		if err != nil {
			if ctx.Err() != nil && r.rec.Committed() {
				return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: "committed", Err: ctx.Err()}, ctx.Err()
			}
			if !r.rec.Committed() {
				r.emit(ctx, step, ResultFailed, r.e.now().Sub(t0), err)
				return r.rollback(ctx, err)
			}
			r.emit(ctx, step, ResultFailed, r.e.now().Sub(t0), err)
			if errors.Is(err, errStuckSoak) {
				return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: "stuck", Err: err}, nil
			}
			next := r.e.now().Add(r.e.opts.RecheckInterval)
			return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: "committed", Err: err, Next: next}, nil
		}
		if !wait.IsZero() {
			return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: "committed", Next: wait}, nil
		}
	}
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

func (r *run) stage(ctx context.Context) error {
	t0 := r.e.now()
	if r.rec.Sinks == nil {
		r.rec.Sinks = map[string]SinkRecord{}
	}
	for _, sb := range r.p.Sinks {
		loc := sb.Sink.Location()
		sr := r.rec.Sinks[loc]
		if !sr.PrevRead {
			var v sinks.Version
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { v, err = sb.Sink.Current(ctx); return err }); err != nil {
				return fmt.Errorf("reading current version of %s: %w", loc, err)
			}
			sr = SinkRecord{PrevRead: true, State: sinks.State{Prev: v}}
			r.rec.Sinks[loc] = sr
			if err := r.save(ctx, nil); err != nil {
				return err
			}
		}
		if err := r.sinkCall(ctx, "stage", "staging to", sb, func(ctx context.Context, st sinks.State) (sinks.Version, error) {
			return sb.Sink.Stage(ctx, r.rotation(), r.sinkKey(sb), st)
		}, func(sr *SinkRecord, v sinks.Version) { sr.Staged = v }); err != nil {
			return err
		}
	}
	r.rec.Step = StepTest
	if err := r.save(ctx, nil); err != nil {
		return err
	}
	r.emit(ctx, StepStage, ResultOK, r.e.now().Sub(t0), nil)
	return nil
}

// sinkCall runs one sink operation between its failpoints, retrying it
// within the step timeout, and journals the version it returns.
func (r *run) sinkCall(ctx context.Context, step, verb string, sb policies.SinkBlock, call func(context.Context, sinks.State) (sinks.Version, error), set func(*SinkRecord, sinks.Version)) error {
	loc := sb.Sink.Location()
	sr := r.rec.Sinks[loc]
	if err := r.e.fp.hit(ctx, step+".before"); err != nil {
		return err
	}
	var v sinks.Version
	if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { v, err = call(ctx, sr.State); return err }); err != nil {
		return fmt.Errorf("%s %s: %w", verb, loc, err)
	}
	if err := r.e.fp.hit(ctx, step+".after"); err != nil {
		return err
	}
	set(&sr, v)
	r.rec.Sinks[loc] = sr
	return r.save(ctx, nil)
}

func (r *run) probe(ctx context.Context, target probes.Target, step, next Step) error {
	t0 := r.e.now()
	if err := r.e.fp.hit(ctx, string(step)+".before"); err != nil {
		return err
	}
	n := 0
	for _, pb := range r.p.Probes {
		if pb.Target != target {
			continue
		}
		n++
		if err := runProbe(ctx, pb, r.key); err != nil {
			return fmt.Errorf("probe %s (%s): %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err)
		}
	}
	if err := r.e.fp.hit(ctx, string(step)+".after"); err != nil {
		return err
	}
	if err := r.setStep(ctx, next); err != nil {
		return err
	}
	if n > 0 {
		r.emit(ctx, step, ResultOK, r.e.now().Sub(t0), nil)
	}
	return nil
}

func posString(file string, line int) string { return fmt.Sprintf("%s:%d", file, line) }

func (r *run) promote(ctx context.Context) error {
	t0 := r.e.now()
	if !r.rec.Promoted {
		r.rec.Promoted = true
		if err := r.save(ctx, nil); err != nil {
			return err
		}
	}
	for _, sb := range r.p.Sinks {
		loc := sb.Sink.Location()
		sr := r.rec.Sinks[loc]
		if sr.Promoted != "" {
			continue
		}
		if err := r.sinkCall(ctx, "promote", "promoting in", sb, func(ctx context.Context, st sinks.State) (sinks.Version, error) {
			return sb.Sink.Promote(ctx, r.rotation(), r.sinkKey(sb), st)
		}, func(sr *SinkRecord, v sinks.Version) { sr.Promoted = v }); err != nil {
			return err
		}
	}
	r.rec.Step = StepReload
	if err := r.save(ctx, nil); err != nil {
		return err
	}
	r.emit(ctx, StepPromote, ResultOK, r.e.now().Sub(t0), nil)
	return nil
}

func (r *run) reload(ctx context.Context, next Step) error {
	t0 := r.e.now()
	if err := r.runReloads(ctx); err != nil {
		return err
	}
	if err := r.setStep(ctx, next); err != nil {
		return err
	}
	if len(r.p.Reloads) > 0 {
		r.emit(ctx, StepReload, ResultOK, r.e.now().Sub(t0), nil)
	}
	return nil
}

func (r *run) runReloads(ctx context.Context) error {
	for _, rb := range r.p.Reloads {
		if err := r.e.fp.hit(ctx, "reload.before"); err != nil {
			return err
		}
		timeout := rb.Timeout
		if timeout <= 0 {
			timeout = time.Minute
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
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

func (r *run) commit(ctx context.Context) error {
	if err := r.e.fp.hit(ctx, "commit.before"); err != nil {
		return err
	}
	now := r.e.now()
	r.rec.CommittedAt = now
	r.rec.Step = StepDrain
	created := r.rec.NewKeyCreated
	if created.IsZero() {
		created = now
	}
	if err := r.save(ctx, func(st *PolicyState) {
		st.CurrentKeyID = r.rec.NewKeyID
		st.CurrentKeyCreated = created
		for _, id := range r.rec.OldKeyIDs {
			if !contains(st.Retired, id) {
				st.Retired = append(st.Retired, id)
			}
		}
	}); err != nil {
		return err
	}
	r.e.takeLive(r.rec.ID, true)
	r.emit(ctx, StepCommit, ResultOK, 0, nil)
	if err := r.e.fp.hit(ctx, "commit.after"); err != nil {
		r.log.Warn().Err(err).Msg("after commit: continuing")
	}
	return nil
}

func (r *run) drain(ctx context.Context) (time.Time, error) {
	if len(r.rec.OldKeyIDs) == 0 {
		r.rec.Step = StepRevoke
		return time.Time{}, r.save(ctx, nil)
	}
	now := r.e.now()
	until := r.rec.CommittedAt.Add(r.p.Revoke.After)
	if now.Before(until) {
		r.emit(ctx, StepDrain, ResultWaiting, 0, nil)
		return until, nil
	}
	if ur, ok := r.p.Provider.Provider.(providers.UsageReporter); ok && r.p.Revoke.WaitUnused {
		settle := r.rec.CommittedAt.Add(ur.UsageReportingDelay())
		if now.Before(settle) {
			r.emit(ctx, StepDrain, ResultWaiting, 0, nil)
			return minTime(settle, now.Add(r.e.opts.RecheckInterval)), nil
		}
		for _, id := range r.rec.OldKeyIDs {
			var lu time.Time
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) (err error) { lu, err = ur.LastUsed(ctx, id); return err }); err != nil {
				return time.Time{}, fmt.Errorf("asking when old key %s was last used: %w", secret.Mask(id), err)
			}
			if !lu.IsZero() && !lu.Before(r.rec.CommittedAt) {
				err := fmt.Errorf("old key %s was used at %s, after commit: a dependent still uses it; revocation waits", secret.Mask(id), lu.Format(time.RFC3339))
				r.emit(ctx, StepDrain, ResultWaiting, 0, err)
				return now.Add(r.e.opts.RecheckInterval), nil
			}
		}
	}
	r.rec.Step = StepDeactivate
	return time.Time{}, r.save(ctx, nil)
}

func (r *run) deactivate(ctx context.Context) error {
	if r.p.Revoke.Soak <= 0 {
		r.rec.Step = StepRevoke
		return r.save(ctx, nil)
	}
	if d, ok := r.p.Provider.Provider.(providers.Deactivator); ok {
		for _, id := range r.rec.OldKeyIDs {
			if err := r.e.fp.hit(ctx, "deactivate.before"); err != nil {
				return err
			}
			if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return d.Deactivate(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
				return fmt.Errorf("deactivating old key %s: %w", secret.Mask(id), err)
			}
			if err := r.e.fp.hit(ctx, "deactivate.after"); err != nil {
				return err
			}
		}
		r.emit(ctx, StepDeactivate, ResultOK, 0, nil)
	}
	r.rec.DeactivatedAt = r.e.now()
	r.rec.Step = StepSoak
	return r.save(ctx, nil)
}

func (r *run) soak(ctx context.Context) (time.Time, error) {
	now := r.e.now()
	until := r.rec.DeactivatedAt.Add(r.p.Revoke.Soak)
	var err error
	for _, pb := range r.p.Probes {
		if pb.Target != probes.TargetDependent {
			continue
		}
		if err = runProbe(ctx, pb, r.key); err != nil {
			err = fmt.Errorf("probe %s (%s) failed during soak: %w", pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err)
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		return time.Time{}, r.reactivate(ctx, err)
	}
	if now.Before(until) {
		r.emit(ctx, StepSoak, ResultWaiting, 0, nil)
		return minTime(until, now.Add(r.e.opts.RecheckInterval)), nil
	}
	r.rec.Step = StepRevoke
	return time.Time{}, r.save(ctx, nil)
}

// reactivate brings the old keys back after dependents failed in the soak
// and marks the policy stuck: something still used the old key.
func (r *run) reactivate(ctx context.Context, cause error) error {
	if d, ok := r.p.Provider.Provider.(providers.Deactivator); ok {
		for _, id := range r.rec.OldKeyIDs {
			if err := r.e.retry(context.WithoutCancel(ctx), r.p, func(ctx context.Context) error { return d.Activate(ctx, id) }); err != nil {
				cause = errors.Join(cause, fmt.Errorf("re-activating old key %s: %w", secret.Mask(id), err))
			}
		}
	}
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

var errStuckSoak = errors.New("dependents failed during soak: old key re-activated; policy is stuck until an operator runs rekey rotate")

func (r *run) revoke(ctx context.Context) (Outcome, error) {
	prov := r.p.Provider.Provider
	for _, id := range r.rec.OldKeyIDs {
		if err := r.e.fp.hit(ctx, "revoke.before"); err != nil {
			return r.committedErr(ctx, StepRevoke, err)
		}
		if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return prov.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			return r.committedErr(ctx, StepRevoke, fmt.Errorf("deleting old key %s: %w", secret.Mask(id), err))
		}
		if err := r.e.fp.hit(ctx, "revoke.after"); err != nil {
			return r.committedErr(ctx, StepRevoke, err)
		}
	}
	now := r.e.now()
	r.rec.Step = StepDone
	r.rec.Result = string(StepDone)
	r.rec.FinishedAt = now
	r.rec.Error = ""
	if _, err := r.e.journal.Update(ctx, r.p.Name, func(st *PolicyState) error {
		for _, id := range r.rec.OldKeyIDs {
			st.Retired = remove(st.Retired, id)
		}
		st.LastSuccess = now
		st.LastResult = string(StepDone)
		st.LastError = ""
		st.Failures = 0
		st.NotBefore = time.Time{}
		st.Stuck = false
		st.finish(r.rec)
		return nil
	}); err != nil {
		return Outcome{}, err
	}
	if len(r.rec.OldKeyIDs) > 0 {
		r.emit(ctx, StepRevoke, ResultOK, 0, nil)
	}
	r.emit(ctx, StepDone, ResultOK, now.Sub(r.rec.StartedAt), nil)
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: StepDone, Result: "done"}, nil
}

func (r *run) committedErr(ctx context.Context, step Step, err error) (Outcome, error) {
	r.emit(ctx, step, ResultFailed, 0, err)
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: r.rec.Step, Result: "committed", Err: err, Next: r.e.now().Add(r.e.opts.RecheckInterval)}, nil
}

// rollback undoes a rotation before commit: every sink is restored to its
// previous version, dependents are reloaded, then the new key is deleted.
// The new key is deleted only once no sink can serve it.
func (r *run) rollback(ctx context.Context, cause error) (Outcome, error) {
	if r.rec.Committed() {
		return Outcome{}, fmt.Errorf("internal error: rollback after commit of %s", r.rec.ID)
	}
	// Roll back even when the caller's context is cancelled (shutdown), but
	// within a bound; what is left is finished at the next start.
	stepTimeout := r.p.StepTimeout
	if stepTimeout <= 0 {
		stepTimeout = 2 * time.Minute
	}
	// Each sink restore gets a step timeout of its own: a sink that cannot
	// be reached must not use up the others' time and leave them serving
	// the new key.
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
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
		if err := r.runReloads(rctx); err != nil {
			r.log.Warn().Err(err).Msg("reload after restoring the previous value failed")
		}
	}
	prov := r.p.Provider.Provider
	switch {
	case r.rec.NewKeyID != "":
		id := r.rec.NewKeyID
		if err := r.e.retry(rctx, r.p, func(ctx context.Context) error { return prov.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			if d, ok := prov.(providers.Deactivator); ok {
				if derr := d.Deactivate(rctx, id); derr == nil {
					r.log.Warn().Err(err).Str("key", secret.Mask(id)).Msg("could not delete the new key; deactivated it instead, retrying deletion later")
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
	r.e.takeLive(r.rec.ID, true)
	r.rec.Result = string(StepRolledBack)
	r.rec.Step = StepRolledBack
	r.rec.FinishedAt = r.e.now()
	st, err := r.e.journal.Update(rctx, r.p.Name, func(st *PolicyState) error {
		r.e.recordFailure(st, r.p, cause)
		st.LastResult = string(StepRolledBack)
		st.finish(r.rec)
		return nil
	})
	if err != nil {
		return Outcome{}, err
	}
	r.emit(rctx, StepRolledBack, ResultRolledBack, 0, cause)
	if st.Stuck {
		r.emit(rctx, StepRolledBack, ResultStuck, 0, cause)
	}
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: StepRolledBack, Result: "rolled_back", Err: cause, Next: st.NotBefore}, nil
}

func (r *run) rollbackPending(ctx context.Context, cause, err error) (Outcome, error) {
	r.emit(ctx, StepRollback, ResultFailed, 0, err)
	next := r.e.now().Add(r.e.opts.RecheckInterval)
	return Outcome{Policy: r.p.Name, RotationID: r.rec.ID, Step: StepRollback, Result: "failed", Err: errors.Join(cause, fmt.Errorf("rollback incomplete, retried at %s: %w", next.Format(time.RFC3339), err)), Next: next}, nil
}

// deleteOrphans removes a key created by this rotation whose id was never
// journaled (a crash between the provider's answer and the journal write):
// a key tagged with this rotation's id, or, where the provider cannot tag,
// a key created after the journaled intent that no record knows.
func (r *run) deleteOrphans(ctx context.Context) error {
	l, ok := r.p.Provider.Provider.(providers.Lister)
	if !ok {
		r.log.Warn().Msg("the provider cannot list keys: if the interrupted create made a key, it cannot be found; the exec provider should implement list")
		return nil
	}
	st, _, err := r.e.journal.Get(ctx, r.p.Name)
	if err != nil {
		return err
	}
	known := map[string]bool{st.CurrentKeyID: true}
	for _, id := range append(append([]string(nil), st.Retired...), r.rec.OldKeyIDs...) {
		known[id] = true
	}
	keys, err := l.List(ctx)
	if err != nil {
		return fmt.Errorf("listing keys to find an orphan: %w", err)
	}
	since := r.rec.IntentAt.Truncate(time.Second)
	for _, k := range keys {
		if known[k.ID] {
			continue
		}
		mine := k.RotationID == r.rec.ID || (k.RotationID == "" && !k.CreatedAt.IsZero() && !k.CreatedAt.Before(since))
		if !mine {
			continue
		}
		id := k.ID
		r.log.Warn().Str("key", secret.Mask(id)).Msg("deleting orphan key created by the interrupted rotation")
		if err := r.e.retry(ctx, r.p, func(ctx context.Context) error { return r.p.Provider.Provider.Delete(ctx, id) }); err != nil && !errors.Is(err, plugin.ErrNotFound) {
			return fmt.Errorf("deleting orphan key %s: %w", secret.Mask(id), err)
		}
	}
	return nil
}

// retry runs an idempotent external call, backing off on errors that are
// not permanent, until the policy's step timeout.
func (e *Engine) retry(ctx context.Context, p *policies.Policy, fn func(ctx context.Context) error) error {
	timeout := p.StepTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || plugin.IsPermanent(err) {
			return err
		}
		t := time.NewTimer(delay/2 + time.Duration(e.rnd()*float64(delay/2)))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// runProbe runs one probe until it passes the required number of times in
// a row, backing off between failures, within the probe's timeout.
func runProbe(ctx context.Context, pb policies.ProbeBlock, key plugin.Key) error {
	timeout, interval, need := pb.Timeout, pb.Interval, pb.Successes
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	if interval <= 0 {
		interval = time.Second
	}
	if need <= 0 {
		need = 1
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := interval
	passed, attempts := 0, 0
	for {
		attempts++
		err := pb.Probe.Check(ctx, key)
		wait := interval
		if err == nil {
			passed++
			if passed >= need {
				return nil
			}
		} else {
			passed = 0
			if plugin.IsPermanent(err) {
				return err
			}
			wait = delay
			delay = min(delay*2, 30*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("passed %d of %d required consecutive checks", passed, need)
			}
			return fmt.Errorf("did not pass within %s (%d attempts): %w", timeout, attempts, err)
		case <-t.C:
		}
	}
}

func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) error {
	d := t.Sub(now())
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func remove(s []string, v string) []string {
	out := s[:0:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// States returns the journaled state of every configured policy, in load
// order, followed by journal entries of policies no longer configured.
func (e *Engine) States(ctx context.Context) ([]PolicyState, error) {
	all, err := e.journal.List(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]PolicyState{}
	for _, s := range all {
		byName[s.Policy] = s
	}
	var out []PolicyState
	for _, n := range e.PolicyNames() {
		s, ok := byName[n]
		if !ok {
			s = PolicyState{Policy: n}
		}
		out = append(out, s)
		delete(byName, n)
	}
	var rest []string
	for n := range byName {
		rest = append(rest, n)
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, byName[n])
	}
	return out, nil
}
