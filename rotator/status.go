package rotator

import (
	"context"
	"fmt"
	"time"

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
	Warning     string    `json:"warning,omitempty"`
	Generation  int64     `json:"generation"`
	LastResult  string    `json:"last_result,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	Stuck       bool      `json:"stuck"`
	// Alert says what dependents showed after an old key was revoked
	// (revoke.watch); it stays until a later rotation commits.
	Alert      string    `json:"alert,omitempty"`
	NextDue    time.Time `json:"next_due,omitzero"`
	NextReason string    `json:"next_reason,omitempty"`
	InFlight   *InFlight `json:"in_flight,omitempty"`
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
}

// Status reports every policy from the journal alone (no provider calls).
func (e *Engine) Status(ctx context.Context) ([]PolicyStatus, error) {
	states, err := e.States(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := make([]PolicyStatus, 0, len(states))
	for _, st := range states {
		ps := PolicyStatus{
			Policy: st.Policy, Generation: st.Generation, LastResult: st.LastResult, LastError: st.LastError,
			LastSuccess: st.LastSuccess, Failures: st.Failures, Stuck: st.Stuck, Alert: st.Alert,
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
		}
		p, ok := e.Policy(st.Policy)
		ps.Configured = ok
		if ok {
			d := Decide(p, st, Facts{}, now)
			ps.NextDue, ps.NextReason = d.At, d.Message
		}
		if a := st.Active; a != nil {
			in := &InFlight{RotationID: a.ID, Step: a.Step, StartedAt: a.StartedAt, CommittedAt: a.CommittedAt}
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
		out = append(out, ps)
	}
	return out, nil
}

// PlanEntry is what `rekey plan` shows for one policy.
type PlanEntry struct {
	Policy   string   `json:"policy"`
	Due      bool     `json:"due"`
	Reason   string   `json:"reason"`
	Message  string   `json:"message"`
	At       string   `json:"at,omitempty"`
	Steps    []string `json:"steps"`
	Warnings []string `json:"warnings,omitempty"`
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
		d := Decide(p, st, e.facts(ctx, p, st), e.now())
		pe := PlanEntry{Policy: n, Due: d.Due, Reason: d.Reason, Message: d.Message, Steps: Steps(p)}
		if !d.At.IsZero() {
			pe.At = d.At.Format(time.RFC3339)
		}
		if l, ok := p.Provider.Provider.(providers.Lister); ok && st.Active == nil {
			lctx, cancel := withStepTimeout(ctx, p)
			keys, err := l.List(lctx)
			cancel()
			if err != nil {
				pe.Warnings = append(pe.Warnings, fmt.Sprintf("listing keys at the provider failed: %v", err))
			} else {
				maxKeys := 0
				if c, ok := p.Provider.Provider.(providers.Capacity); ok {
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
