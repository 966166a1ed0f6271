package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// PolicyStatus is what `rekey status` shows for one policy. Key ids are
// masked; nothing here is secret.
type PolicyStatus struct {
	Policy     string    `json:"policy"`
	Configured bool      `json:"configured"`
	CurrentKey string    `json:"current_key,omitempty"`
	KeyCreated time.Time `json:"key_created,omitzero"`
	KeySeen    time.Time `json:"key_first_seen,omitzero"`
	// KeyAgeSec counts from KeyCreated, or from KeySeen when the provider
	// reported a creation time in the future (then Warning says so).
	KeyAgeSec int64 `json:"key_age_seconds,omitempty"`
	// Warning reports a key creation time that was not trusted.
	Warning string `json:"warning,omitempty"`
	// KeyExpires is when the current key expires at its provider (zero:
	// never, or unknown); ExpiresInSec is the time left (negative once
	// it expired) and Expired says it did: the loudest state.
	KeyExpires   time.Time `json:"key_expires,omitzero"`
	ExpiresInSec int64     `json:"expires_in_seconds,omitempty"`
	Expired      bool      `json:"expired,omitempty"`
	// Labels are the policy's labels.
	Labels      map[string]string `json:"labels,omitempty"`
	Generation  int64             `json:"generation"`
	LastResult  string            `json:"last_result,omitempty"`
	LastError   string            `json:"last_error,omitempty"`
	LastSuccess time.Time         `json:"last_success,omitzero"`
	Failures    int               `json:"failures,omitempty"`
	Stuck       bool              `json:"stuck"`
	// KeyUnverified marks a current key kept unverified after a first
	// rotation failed (PolicyState.CurrentKeyUnverified).
	KeyUnverified bool `json:"key_unverified,omitempty"`
	// Owner is the instance that owns the policy, with journal "etcd"
	// (filled in by the status command; empty for the embedded journal).
	Owner string `json:"owner,omitempty"`
	// Alert says what dependents showed after an old key was revoked
	// (revoke.watch); it stays until a later rotation commits.
	Alert string `json:"alert,omitempty"`
	// NextState, NextDue and NextReason are the policy's Next: what
	// happens next, when, and why.
	NextState  string    `json:"next_state,omitempty"`
	NextDue    time.Time `json:"next_due,omitzero"`
	NextReason string    `json:"next_reason,omitempty"`
	InFlight   *InFlight `json:"in_flight,omitempty"`
}

// States of a Next.
const (
	NextInFlight = "in_flight"
	NextStuck    = "stuck"
	NextBackoff  = "backoff"
	NextWindow   = "waiting_for_window"
	NextDue      = "due"
	NextNotDue   = "not_due"
)

// Next is what is happening to a policy and what comes next: the one model
// behind rekey status and rekey plan.
type Next struct {
	// State is in_flight, stuck, backoff, waiting_for_window, due or
	// not_due.
	State string `json:"state"`
	// At is when the next thing happens (zero: now, or not known).
	At     time.Time `json:"at,omitzero"`
	Reason string    `json:"reason"`
	// Remaining are the steps left of the rotation in flight.
	Remaining []Step `json:"remaining,omitempty"`
}

// NextFor computes the Next of policy p from its journaled state.
func NextFor(p *policies.Policy, st PolicyState, f Facts, now time.Time) Next {
	if a := st.Active; a != nil {
		n := Next{State: NextInFlight, Remaining: remainingSteps(a.Step)}
		switch {
		case a.Step == StepRollback:
			n.Reason = fmt.Sprintf("rotation %s is rolling back (%s)", a.ID, a.Error)
		case a.Step == StepDrain && a.Committed():
			n.At = a.CommittedAt.Add(p.Revoke.After)
			n.Reason = fmt.Sprintf("rotation %s committed; the old key is kept until the drain ends", a.ID)
		case a.Step == StepSoak && !a.DeactivatedAt.IsZero():
			n.At = a.DeactivatedAt.Add(p.Revoke.Soak)
			n.Reason = fmt.Sprintf("rotation %s soaks: dependents are probed until the old key is revoked", a.ID)
		default:
			n.Reason = fmt.Sprintf("rotation %s is at step %s", a.ID, a.Step)
		}
		if st.Stuck {
			n.State = NextStuck
			n.Reason = fmt.Sprintf("rotation %s is stuck at step %s: %s; fix the cause, then run: %s", a.ID, a.Step, st.LastError, p.RotateCommand())
		}
		return n
	}
	d := Decide(p, st, f, now)
	n := Next{State: NextNotDue, At: d.At, Reason: d.Message}
	switch {
	case d.Reason == ReasonStuck:
		n.State = NextStuck
	case d.Reason == ReasonBackoff:
		n.State = NextBackoff
	case d.Reason == ReasonWindow:
		n.State = NextWindow
	case d.Due:
		n.State = NextDue
	}
	return n
}

// InFlight describes a rotation that has not finished.
type InFlight struct {
	RotationID  string    `json:"rotation_id"`
	Step        Step      `json:"step"`
	StartedAt   time.Time `json:"started_at"`
	NewKey      string    `json:"new_key,omitempty"`
	CommittedAt time.Time `json:"committed_at,omitzero"`
	// PendingRevocation are the old keys still to be revoked (masked).
	PendingRevocation []string `json:"pending_revocation,omitempty"`
	// RevokeNotBefore is the end of the grace period after commit.
	RevokeNotBefore time.Time `json:"revoke_not_before,omitzero"`
	// Remaining are the steps still to come, the current one first.
	Remaining []Step `json:"remaining,omitempty"`
}

// Status reports every policy from the journal alone (no provider calls).
func (e *Engine) Status(ctx context.Context) ([]PolicyStatus, error) {
	states, err := e.states(ctx, e.listHot)
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := make([]PolicyStatus, 0, len(states))
	for _, st := range states {
		out = append(out, e.statusOf(st, now))
	}
	return out, nil
}

// StatusOf reports the named policies as Status does, reading only their
// journal entries: what changed after an event, without the whole journal.
func (e *Engine) StatusOf(ctx context.Context, names []string) ([]PolicyStatus, error) {
	now := e.now()
	out := make([]PolicyStatus, 0, len(names))
	for _, n := range names {
		st, _, err := e.getHot(ctx, n)
		if err != nil {
			return nil, err
		}
		st.Policy = n
		out = append(out, e.statusOf(st, now))
	}
	return out, nil
}

func (e *Engine) statusOf(st PolicyState, now time.Time) PolicyStatus {
	ps := PolicyStatus{
		Policy: st.Policy, Generation: st.Generation, LastResult: st.LastResult, LastError: st.LastError,
		LastSuccess: st.LastSuccess, Failures: st.Failures, Stuck: st.Stuck, KeyUnverified: st.CurrentKeyUnverified, Alert: st.Alert,
	}
	if st.CurrentKeyID != "" {
		ps.CurrentKey = secret.Mask(st.CurrentKeyID)
		ps.KeyCreated = st.CurrentKeyCreated
		ps.KeySeen = st.CurrentKeySeen
		from, warning := KeyAgeFrom(st.CurrentKeyCreated, st.CurrentKeySeen, now)
		if !from.IsZero() {
			ps.KeyAgeSec = int64(now.Sub(from) / time.Second)
		}
		ps.Warning = warning
		if exp := st.CurrentKeyExpires; !exp.IsZero() {
			ps.KeyExpires = exp
			ps.ExpiresInSec = int64(exp.Sub(now) / time.Second)
			ps.Expired = !now.Before(exp)
		}
	}
	p, ok := e.Policy(st.Policy)
	ps.Configured = ok
	if ok {
		ps.Labels = p.Labels
		n := NextFor(p, st, Facts{}, now)
		ps.NextState, ps.NextDue, ps.NextReason = n.State, n.At, n.Reason
	}
	if a := st.Active; a != nil {
		in := &InFlight{RotationID: a.ID, Step: a.Step, StartedAt: a.StartedAt, CommittedAt: a.CommittedAt, Remaining: remainingSteps(a.Step)}
		if a.NewKeyID != "" {
			in.NewKey = secret.Mask(a.NewKeyID)
		}
		if a.Committed() {
			for _, id := range a.OldKeyIDs {
				in.PendingRevocation = append(in.PendingRevocation, secret.Mask(id))
			}
			if ok {
				in.RevokeNotBefore = a.CommittedAt.Add(p.Revoke.After)
			}
		}
		ps.InFlight = in
	}
	return ps
}

// PlanEntry is what `rekey plan` shows for one policy.
type PlanEntry struct {
	Policy string `json:"policy"`
	// State is the policy's Next state (due, not_due, backoff, stuck,
	// waiting_for_window, in_flight).
	State string `json:"state"`
	// RotationID names the rotation in flight; Steps are then what
	// remains of it.
	RotationID string   `json:"rotation_id,omitempty"`
	Due        bool     `json:"due"`
	Reason     string   `json:"reason"`
	Message    string   `json:"message"`
	At         string   `json:"at,omitempty"`
	Steps      []string `json:"steps"`
	Warnings   []string `json:"warnings,omitempty"`
	// KeyExpires is when the current key expires at its provider (RFC
	// 3339; empty: never, or unknown), and Expired says it did.
	KeyExpires string `json:"key_expires,omitempty"`
	Expired    bool   `json:"expired,omitempty"`
}

// Plan says, for each named policy (all when names is empty), whether it is
// due, why, and the steps a rotation would take. It asks providers that can
// list keys about the keys they hold, and changes nothing.
func (e *Engine) Plan(ctx context.Context, names []string) ([]PlanEntry, error) {
	if len(names) == 0 {
		names = e.PolicyNames()
	}
	var out []PlanEntry
	for _, n := range names {
		p, ok := e.Policy(n)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownPolicy, n)
		}
		st, _, err := e.journal.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		facts := e.facts(ctx, p, st)
		d := Decide(p, st, facts, e.now())
		nx := NextFor(p, st, facts, e.now())
		pe := PlanEntry{Policy: n, State: nx.State, Due: d.Due, Reason: d.Reason, Message: nx.Reason, Steps: Steps(p)}
		if a := st.Active; a != nil {
			pe.RotationID, pe.Reason, pe.Steps = a.ID, ReasonInFlight, StepsFrom(p, a.Step)
		}
		if !nx.At.IsZero() {
			pe.At = nx.At.Format(time.RFC3339)
		}
		exp := st.CurrentKeyExpires
		if st.CurrentKeyID == "" && exp.IsZero() {
			exp = facts.ExistingKeyExpires
		}
		if !exp.IsZero() {
			pe.KeyExpires = exp.UTC().Format(time.RFC3339)
			pe.Expired = !e.now().Before(exp)
		}
		if l, ok := providers.AsLister(p.Provider.Provider); ok && st.Active == nil {
			lctx, cancel := withStepTimeout(ctx, p)
			keys, err := l.List(lctx)
			cancel()
			if err != nil {
				pe.Warnings = append(pe.Warnings, fmt.Sprintf("listing keys at the provider failed: %v", err))
			} else {
				maxKeys := 0
				if c, ok := providers.AsCapacity(p.Provider.Provider); ok {
					maxKeys = c.MaxKeys()
				}
				if _, err := PlanCapacity(keys, maxKeys, st); err != nil {
					pe.Warnings = append(pe.Warnings, err.Error())
				}
			}
		}
		out = append(out, pe)
	}
	return out, nil
}
