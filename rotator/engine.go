// Package rotator is rekey's engine: it decides when each policy is due,
// runs the rotation protocol of docs/protocol.md step by step, journals
// each step before and after its external effect, rolls back before commit
// and rolls forward after it, and reconciles unfinished rotations on start.
//
// The files split the engine by concern: engine.go holds the entry points,
// protocol.go the step table and its driver, forward.go the steps up to
// commit, postcommit.go drain, deactivate, soak and revoke, rollback.go the
// rollback and orphan clean-up, retry.go the retry and probe loops.
package rotator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/faultinject"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/providers"
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
	// Failpoints enables failpoints (tests only): name (see Failpoints) to
	// action ("kill", "error" or "panic"). When nil, the failpoints a test
	// binary enabled through internal/faultinject apply; a production
	// binary has none.
	Failpoints map[string]string
	// Audit, when set, records every event synchronously before the
	// observers see it. If a write fails, the rotation takes no further
	// irreversible step (commit, deactivate, revoke) in that call: before
	// commit it rolls back, after it the step is retried later. The
	// outcome's error wraps ErrAudit.
	Audit AuditRecorder
	// InterruptGrace bounds how long a rollback of an interrupted rotation
	// (its context ended: shutdown, Ctrl-C) keeps proving that no
	// dependent holds the new key; past it the rollback stays pending and
	// is finished at the next start (default 10s).
	InterruptGrace time.Duration
}

// AuditRecorder writes events to the audit log.
type AuditRecorder interface {
	Record(ctx context.Context, e Event) error
}

// ErrAudit reports that the audit log could not be written, so the
// rotation stopped before an irreversible step.
var ErrAudit = errors.New("audit log write failed")

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
	// kickMu guards what the scheduler is asked to look at again: every
	// policy (kickAll) or only some (kicked).
	kickMu  sync.Mutex
	kickAll bool
	kicked  map[string]bool
	// use counts the calls advancing a rotation under each policy value
	// (inuse.go).
	use policyUse
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
	if opts.InterruptGrace <= 0 {
		opts.InterruptGrace = 10 * time.Second
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
	if opts.Failpoints == nil {
		opts.Failpoints = faultinject.Points()
	}
	if len(opts.Failpoints) > 0 {
		for name, action := range opts.Failpoints {
			if _, err := ParseFailpoints(name + "=" + action); err != nil {
				return nil, err
			}
		}
		e.fp = &failpoints{action: opts.Failpoints, hits: map[string]int{}}
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
	e.Trigger()
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

// ErrStuck reports that a policy waits for an operator: the engine could
// not prove a step safe (a dependent may hold the key it would delete or
// deactivate) or ran out of its failure budget.
var ErrStuck = errors.New("policy is stuck")

// Verdict is how an attempt to advance a policy ended.
type Verdict string

// Verdicts of an Outcome.
const (
	// OutcomeDone: the rotation finished; the old key is revoked.
	OutcomeDone Verdict = "done"
	// OutcomeCommitted: the new key is current; drain, deactivate, soak or
	// revoke is still to come (Next says when it is looked at again).
	OutcomeCommitted Verdict = "committed"
	// OutcomeRolledBack: the rotation failed before commit and was undone.
	OutcomeRolledBack Verdict = "rolled_back"
	// OutcomeFailed: the rotation failed, or its rollback is incomplete
	// and is retried at Next.
	OutcomeFailed Verdict = "failed"
	// OutcomeNotDue: no rotation was started (Decision says why).
	OutcomeNotDue Verdict = "not_due"
	// OutcomeStuck: the policy waits for an operator.
	OutcomeStuck Verdict = "stuck"
)

// Outcome is the result of advancing one policy.
type Outcome struct {
	Policy     string
	RotationID string
	// Step is where the rotation stands now (done, rolled_back, drain...).
	Step   Step
	Result Verdict
	// Err is why a rotation failed or rolled back.
	Err error
	// Next is when the policy should be looked at again.
	Next time.Time
	// Decision is the scheduling decision when no rotation ran.
	Decision Decision
	// Joined is set when Rotate found a rotation already in flight and
	// continued it instead of starting one; the outcome is that rotation's.
	Joined bool
	// Pending lists the steps still to come when the rotation has not
	// finished (from the protocol table).
	Pending []Step
	// Compromise reports, for rekey rotate -compromised, the new key and
	// whether the old keys are revoked.
	Compromise *CompromiseReport
}

// RotateOptions tune an on-demand rotation.
type RotateOptions struct {
	// UntilDone keeps going through drain, soak and revoke, waiting as the
	// revoke rules say; otherwise Rotate returns after commit and the
	// daemon (or the next run) finishes the revocation.
	UntilDone bool
	// Compromised makes this an emergency rotation for a leaked key: no
	// grace period, drain or soak; the old key is revoked as soon as the
	// dependents pass with the new one, never before. A rotation in
	// flight is joined and finished that way. Implies UntilDone.
	Compromised bool
	// Note is the operator's reason, carried by every event of the
	// rotation (audit log, notifications).
	Note string
	// ForceRevoke (with Compromised) revokes the old key even when the
	// dependents do not pass with the new key, and commits a rotation
	// whose verify step failed instead of rolling it back.
	ForceRevoke bool
}

// Rotate starts a rotation of the named policy now, whether or not it is
// due; a stuck policy is released. If a rotation is already in flight, it
// is continued instead. With UntilDone, Rotate waits through drain and soak
// without holding the policy's lock: the scheduler may advance the same
// rotation meanwhile, and Rotate then reports how it ended.
func (e *Engine) Rotate(ctx context.Context, name string, o RotateOptions) (Outcome, error) {
	p, ok, release := e.usePolicy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	defer release()
	// The scheduler (if running) must learn this rotation's next wake
	// time; no other policy changed.
	defer e.TriggerPolicy(name)
	forced := false
	if o.Compromised {
		o.UntilDone = true
		ctx = withCompromise(ctx, compromise{note: o.Note, force: o.ForceRevoke})
		defer e.AddObserver(ObserverFunc(func(_ context.Context, ev Event) {
			if ev.Policy == name && ev.Result == ResultForced {
				forced = true
			}
		}))()
	}
	joined := false
	out, err := e.locked(name, func() (Outcome, error) {
		// Read first: a journal transaction is written only when there is
		// something to release.
		st, _, err := e.journal.Get(ctx, name)
		if err == nil && (st.Stuck || !st.NotBefore.IsZero() || o.Compromised && st.Active != nil && !st.Active.Compromised) {
			st, err = e.journal.Update(ctx, name, func(st *PolicyState) error {
				st.Stuck = false
				st.NotBefore = time.Time{}
				if o.Compromised && st.Active != nil && !st.Active.Compromised {
					st.Active.Compromised, st.Active.Note, st.Active.ForceRevoke = true, o.Note, o.ForceRevoke
				}
				return nil
			})
		}
		if err != nil {
			return Outcome{}, err
		}
		joined = st.Active != nil
		out, err := e.advanceLocked(ctx, p, modeManual)
		if err == nil && o.Compromised && joined && !st.Active.Committed() && out.Result == OutcomeRolledBack {
			// The rotation found in flight had not committed and was
			// rolled back: start the emergency rotation itself.
			joined = false
			out, err = e.advanceLocked(ctx, p, modeManual)
		}
		return out, err
	})
	// Every wait has a bound: a failed attempt of a step after commit (it
	// already retried for its step timeout) ends the wait, and the outcome
	// says what is pending (the daemon, or the next rekey rotate, finishes
	// it).
	for err == nil && o.UntilDone && out.Result == OutcomeCommitted && out.Err == nil {
		if err = sleepUntil(ctx, e.now, out.Next); err != nil {
			break
		}
		id := out.RotationID
		out, err = e.locked(name, func() (Outcome, error) { return e.continueLocked(ctx, p, id) })
	}
	out.Joined = joined
	if out.Result == OutcomeCommitted || out.Result == OutcomeStuck || out.Result == OutcomeFailed {
		out.Pending = remainingSteps(out.Step)
	}
	if o.Compromised {
		rep := e.compromiseReport(context.WithoutCancel(ctx), name, out.RotationID, forced)
		out.Compromise = &rep
	}
	return out, err
}

// locked runs fn holding the policy's lock.
func (e *Engine) locked(name string, fn func() (Outcome, error)) (Outcome, error) {
	l := e.policyLock(name)
	l.Lock()
	defer l.Unlock()
	return fn()
}

// continueLocked advances the rotation id if it is still in flight, and
// otherwise reports how it ended; it never starts another rotation.
func (e *Engine) continueLocked(ctx context.Context, p *policies.Policy, id string) (Outcome, error) {
	st, _, err := e.journal.Get(ctx, p.Name)
	if err != nil {
		return Outcome{}, err
	}
	if st.Active != nil && st.Active.ID == id {
		return e.advanceLocked(ctx, p, modeContinue)
	}
	for i := len(st.History) - 1; i >= 0; i-- {
		if rec := st.History[i]; rec.ID == id {
			out := Outcome{Policy: p.Name, RotationID: id, Step: rec.Step, Result: Verdict(rec.Result)}
			if rec.Error != "" {
				out.Err = errors.New(rec.Error)
			}
			return out, nil
		}
	}
	return Outcome{}, fmt.Errorf("rotation %s of %s is neither in flight nor in the journal's history", id, p.Name)
}

// Advance moves the named policy forward as far as it can go now: it
// continues a rotation in flight, or starts one if the policy is due.
func (e *Engine) Advance(ctx context.Context, name string) (Outcome, error) {
	p, ok, release := e.usePolicy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	defer release()
	return e.locked(name, func() (Outcome, error) { return e.advanceLocked(ctx, p, modeScheduled) })
}

// advanceSlot is Advance for the scheduler: it takes one of the
// scheduler's slots only once it holds the policy's lock, so that calls
// waiting for a policy busy elsewhere (rekey rotate) hold no slot.
func (e *Engine) advanceSlot(ctx context.Context, name string, slots chan struct{}, waiting *atomic.Int32) (Outcome, error) {
	p, ok, release := e.usePolicy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	defer release()
	l := e.policyLock(name)
	if !l.TryLock() {
		// Busy elsewhere (rekey rotate): the scheduler may start another
		// policy meanwhile.
		waiting.Add(1)
		e.wakeUp()
		l.Lock()
		waiting.Add(-1)
	}
	defer l.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
	defer func() { <-slots }()
	return e.advanceLocked(ctx, p, modeScheduled)
}

// advanceMode says who advances a policy.
type advanceMode int

const (
	// modeScheduled: the scheduler or Advance; a stuck policy waits.
	modeScheduled advanceMode = iota
	// modeReconcile: at start; a rollback that was stuck is retried.
	modeReconcile
	// modeManual: rekey rotate; starts a rotation whether due or not.
	modeManual
	// modeContinue: rekey rotate -wait continuing its own rotation.
	modeContinue
)

func (e *Engine) advanceLocked(ctx context.Context, p *policies.Policy, mode advanceMode) (Outcome, error) {
	force, manual := mode == modeManual, mode == modeManual || mode == modeContinue
	st, _, err := e.journal.Get(ctx, p.Name)
	if err != nil {
		return Outcome{}, err
	}
	st.Policy = p.Name
	if st.Active == nil {
		expiryNext := e.checkExpiry(ctx, p, st)
		if !force {
			d := Decide(p, st, e.facts(ctx, p, st), e.now())
			if d.Warning != "" {
				e.log.Warn().Str("policy", p.Name).Msg(d.Warning)
			}
			if !d.Due {
				res := OutcomeNotDue
				if d.Reason == ReasonStuck {
					res = OutcomeStuck
				}
				next := d.At
				if !expiryNext.IsZero() && (next.IsZero() || expiryNext.Before(next)) {
					next = expiryNext
				}
				return Outcome{Policy: p.Name, Result: res, Decision: d, Next: next}, nil
			}
			e.log.Info().Str("policy", p.Name).Str("reason", d.Reason).Str("why", d.Message).Msg("due")
		}
		return e.start(ctx, p, st, manual)
	}
	if st.Stuck && !force && (st.Active.Committed() || st.Active.Step == StepRollback && mode != modeReconcile) {
		// After commit, dependents failed (the old key was re-activated, or
		// was never deactivated): nothing more happens until an operator
		// runs rekey rotate. A rollback that could not prove the old key
		// served is retried at start and by rekey rotate.
		msg := fmt.Sprintf("stuck at step %s (%s); fix the cause, then run: %s", st.Active.Step, st.LastError, p.RotateCommand())
		return Outcome{Policy: p.Name, RotationID: st.Active.ID, Step: st.Active.Step, Result: OutcomeStuck, Decision: Decision{Reason: ReasonStuck, Message: msg}}, nil
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
		r.rec.Interrupted = true
		return r.rollback(ctx, fmt.Errorf("interrupted at step %s (process stopped)", r.rec.Step))
	}
	return r.drive(ctx)
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
	l, ok := providers.AsLister(p.Provider.Provider)
	if !ok {
		return Facts{}
	}
	ctx, cancel := withStepTimeout(ctx, p)
	defer cancel()
	keys, err := l.List(ctx)
	if err != nil || len(keys) != 1 {
		return Facts{}
	}
	return Facts{ExistingKeyCreated: keys[0].CreatedAt, ExistingKeyExpires: keys[0].ExpiresAt}
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

// States returns the journaled state of every configured policy, in load
// order, followed by journal entries of policies no longer configured.
func (e *Engine) States(ctx context.Context) ([]PolicyState, error) {
	return e.states(ctx, e.journal.List)
}

// states is States over list: the journal's List, or listHot.
func (e *Engine) states(ctx context.Context, list func(context.Context) ([]PolicyState, error)) ([]PolicyState, error) {
	all, err := list(ctx)
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

// reconcile advances the named policy at start.
func (e *Engine) reconcile(ctx context.Context, name string) (Outcome, error) {
	p, ok, release := e.usePolicy(name)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	defer release()
	return e.locked(name, func() (Outcome, error) { return e.advanceLocked(ctx, p, modeReconcile) })
}
