package rotator

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/secret"
)

// Reason codes of a Decision.
const (
	ReasonNeverRotated = "never_rotated"
	ReasonAge          = "age"
	ReasonCron         = "cron"
	ReasonMaxAge       = "max_age"
	// ReasonExpiry: the key expires at its provider within expiry_lead;
	// like max_age, this overrides the window.
	ReasonExpiry = "expiry"
	// ReasonExpired: the key expired at its provider before it was
	// replaced: dependents that still use it fail. The loudest state.
	ReasonExpired  = "expired"
	ReasonNotDue   = "not_due"
	ReasonWindow   = "waiting_for_window"
	ReasonBackoff  = "backoff"
	ReasonStuck    = "stuck"
	ReasonInFlight = "in_flight"
	// ReasonUnverified: the current key was kept without verification
	// after the first rotation failed (PolicyState.CurrentKeyUnverified).
	ReasonUnverified = "unverified"
	// ReasonUnknownAge: the key's creation time is in the future and
	// rekey has no record of when it first saw the key.
	ReasonUnknownAge = "unknown_age"
)

// ClockSkew is how far in the future a key's reported creation time may be
// (clocks disagree a little) before rekey distrusts it and counts the key's
// age from when it first saw the key.
const ClockSkew = 5 * time.Minute

// Decision says whether a policy should start a rotation now, why, and when
// it should be looked at again.
type Decision struct {
	Due    bool
	Reason string
	// Message explains the decision to an operator.
	Message string
	// At is when the policy is (or was) due, or when to look again.
	At time.Time
	// Warning, when set, says that the key's reported creation time was
	// not trusted (a clock is wrong); logs and status show it.
	Warning string
}

// Facts are what the engine learned from outside the journal.
type Facts struct {
	// ExistingKeyCreated is the creation time of the key found at the
	// provider when rekey has never rotated the policy (zero if unknown).
	ExistingKeyCreated time.Time
	// ExistingKeyExpires is that key's expiry at the provider (zero if
	// it does not expire or the provider cannot tell).
	ExistingKeyExpires time.Time
}

// Decide is the pure scheduling decision for one policy: whether a rotation
// should start at now. It does no I/O.
func Decide(p *policies.Policy, st PolicyState, f Facts, now time.Time) Decision {
	created, seen := st.CurrentKeyCreated, st.CurrentKeySeen
	if created.IsZero() && seen.IsZero() {
		created = f.ExistingKeyCreated
	}
	from, warning := KeyAgeFrom(created, seen, now)
	expires := st.CurrentKeyExpires
	if st.CurrentKeyID == "" && expires.IsZero() {
		expires = f.ExistingKeyExpires
	}
	d := decide(p, st, from, expires, warning != "", now)
	d.Warning = warning
	return d
}

// KeyAgeFrom returns the time a key's age counts from: its reported
// creation time, unless that is more than ClockSkew after rekey first saw
// the key (or after now, when rekey has no such record). Then the age
// counts from the first sighting, or is unknown (zero) without one, and
// warning says so.
func KeyAgeFrom(created, firstSeen, now time.Time) (from time.Time, warning string) {
	if created.IsZero() {
		return firstSeen, ""
	}
	ref := firstSeen
	if ref.IsZero() {
		ref = now
	}
	if !created.After(ref.Add(ClockSkew)) {
		return created, ""
	}
	if firstSeen.IsZero() {
		return time.Time{}, fmt.Sprintf("the provider reports the key created at %s, in the future: a clock is wrong; rekey has no record of when it first saw the key, so its age is unknown and it is due now",
			created.UTC().Format(time.RFC3339))
	}
	return firstSeen, fmt.Sprintf("the provider reports the key created at %s, more than %s after rekey first saw it: a clock is wrong; its age counts from %s, when rekey first saw it",
		created.UTC().Format(time.RFC3339), ClockSkew, firstSeen.UTC().Format(time.RFC3339))
}

func decide(p *policies.Policy, st PolicyState, created, expires time.Time, distrusted bool, now time.Time) Decision {
	if st.Active != nil {
		return Decision{Reason: ReasonInFlight, Message: fmt.Sprintf("rotation %s is at step %s", st.Active.ID, st.Active.Step), At: now}
	}
	if st.Stuck {
		return Decision{Reason: ReasonStuck, Message: fmt.Sprintf("stuck after %d failed attempts (last: %s); fix the cause, then run: %s", st.Failures, st.LastError, p.RotateCommand())}
	}
	var d Decision
	switch {
	case created.IsZero() && distrusted:
		d = Decision{Due: true, Reason: ReasonUnknownAge, Message: "the key's age is unknown (its creation time is in the future)", At: now}
	case created.IsZero():
		d = Decision{Due: true, Reason: ReasonNeverRotated, Message: "no key rotated by rekey yet", At: now}
	case st.CurrentKeyUnverified:
		d = Decision{Due: true, Reason: ReasonUnverified, Message: "the current key was kept unverified when the first rotation failed after serving it", At: now}
	case p.Schedule.MaxAge > 0 && !now.Before(created.Add(p.Schedule.MaxAge)):
		return Decision{Due: true, Reason: ReasonMaxAge, Message: fmt.Sprintf("key is %s old, over max_age %s: rotating regardless of window", age(now, created), p.Schedule.MaxAge), At: created.Add(p.Schedule.MaxAge)}
	case !expires.IsZero() && !now.Before(ExpiryDue(p, created, expires)):
		return decideExpiry(p, st, created, expires, now)
	default:
		d = nextDue(p, st, created)
		if !expires.IsZero() {
			if at := ExpiryDue(p, created, expires); d.At.IsZero() || at.Before(d.At) {
				d = Decision{Reason: ReasonExpiry, Message: fmt.Sprintf("key expires at %s; due %s before (expiry_lead %s)", expires.UTC().Format(time.RFC3339), expires.Sub(at).Round(time.Second), p.Schedule.ExpiryLead), At: at}
			}
		}
		d.Due = !now.Before(d.At)
		if !d.Due {
			d.Reason = ReasonNotDue
		}
	}
	if !st.NotBefore.IsZero() && now.Before(st.NotBefore) {
		return Decision{Reason: ReasonBackoff, Message: fmt.Sprintf("backing off after %d failed attempts until %s", st.Failures, st.NotBefore.Format(time.RFC3339)), At: st.NotBefore}
	}
	if d.Due && p.Schedule.Window != nil && !p.Schedule.Window.Contains(now) {
		open := p.Schedule.Window.NextOpen(now)
		if p.Schedule.MaxAge > 0 && !created.IsZero() && created.Add(p.Schedule.MaxAge).Before(open) {
			open = created.Add(p.Schedule.MaxAge)
		}
		if !expires.IsZero() && ExpiryDue(p, created, expires).Before(open) {
			open = ExpiryDue(p, created, expires)
		}
		return Decision{Reason: ReasonWindow, Message: fmt.Sprintf("due (%s), waiting for window %q", d.Message, p.Schedule.Window.Expr), At: open}
	}
	return d
}

// ExpiryDue is when a key created at created that expires at expires is
// due: expiry_lead before its expiry.
func ExpiryDue(p *policies.Policy, created, expires time.Time) time.Time {
	return expires.Add(-p.Schedule.ExpiryLead.Before(created, expires))
}

// decideExpiry decides for a key within expiry_lead of its expiry, or
// past it: due regardless of the window. After failed attempts the backoff
// still applies, but the next attempt comes no later than halfway from the
// last attempt to the expiry, so that attempts get closer as the expiry
// nears instead of waiting past it.
func decideExpiry(p *policies.Policy, st PolicyState, created, expires, now time.Time) Decision {
	d := Decision{Due: true, Reason: ReasonExpiry, At: ExpiryDue(p, created, expires),
		Message: fmt.Sprintf("key expires at %s, in %s (expiry_lead %s): rotating regardless of window", expires.UTC().Format(time.RFC3339), expires.Sub(now).Round(time.Second), p.Schedule.ExpiryLead)}
	if !now.Before(expires) {
		d.Reason, d.At = ReasonExpired, expires
		d.Message = fmt.Sprintf("key EXPIRED at %s, %s ago: dependents that still use it fail; rotating now", expires.UTC().Format(time.RFC3339), now.Sub(expires).Round(time.Second))
	}
	if st.NotBefore.IsZero() || !now.Before(st.NotBefore) {
		return d
	}
	retry := st.NotBefore
	if !st.LastAttempt.IsZero() && st.LastAttempt.Before(expires) {
		if half := st.LastAttempt.Add(expires.Sub(st.LastAttempt) / 2); half.Before(retry) {
			retry = half
		}
	}
	if !now.Before(retry) {
		return d
	}
	return Decision{Reason: ReasonBackoff, At: retry,
		Message: fmt.Sprintf("backing off after %d failed attempts until %s; %s", st.Failures, retry.UTC().Format(time.RFC3339), d.Message)}
}

func nextDue(p *policies.Policy, st PolicyState, created time.Time) Decision {
	jit := Jitter(p.Name, st.Generation+1, p.Schedule.Jitter)
	var best Decision
	if p.Schedule.Every > 0 {
		at := created.Add(p.Schedule.Every).Add(jit)
		best = Decision{Reason: ReasonAge, Message: fmt.Sprintf("the key was created at %s and is rotated every %s", created.Format(time.RFC3339), policies.FormatDuration(p.Schedule.Every)), At: at}
	}
	if p.Schedule.Cron != nil {
		at := p.Schedule.Cron.Next(created).Add(jit)
		if best.At.IsZero() || at.Before(best.At) {
			best = Decision{Reason: ReasonCron, Message: fmt.Sprintf("the key was created at %s and is rotated on cron %q", created.Format(time.RFC3339), p.Schedule.CronExpr), At: at}
		}
	}
	return best
}

func age(now, t time.Time) time.Duration { return now.Sub(t).Truncate(time.Second) }

// Jitter spreads a policy's due time by a deterministic fraction of max,
// derived from the policy name and generation, so that restarts do not move
// it and policies with the same schedule do not all start at once.
func Jitter(policy string, generation int64, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", policy, generation)
	return time.Duration(h.Sum64() % uint64(max))
}

// Backoff is the delay before the next attempt after failures consecutive
// failures: base doubled per failure, capped, with "equal jitter" (half
// fixed, half random: r in [0,1)).
func Backoff(failures int, base, limit time.Duration, r float64) time.Duration {
	if failures <= 0 || limit <= 0 {
		return 0
	}
	return retry.Backoff{Initial: base, Max: limit, Rand: func() float64 { return r }}.Delay(failures)
}

// CapacityPlan is what the create step may do with the keys at the provider.
type CapacityPlan struct {
	// Old are the keys the new one replaces; revoked after commit.
	Old []string
	// DeleteFirst are keys this journal knows to be retired: provably
	// rekey's and no longer served, deleted to make room.
	DeleteFirst []string
	// Unknown are keys nobody here created; left alone.
	Unknown []plugin.KeyInfo
}

// PlanCapacity decides, from the keys listed at the provider, which keys a
// new rotation replaces and whether the provider has room for another. A
// key that rekey cannot prove is its own and retired is never deleted: if it
// takes the room needed, the rotation is refused with a clear error.
func PlanCapacity(keys []plugin.KeyInfo, maxKeys int, st PolicyState) (CapacityPlan, error) {
	var plan CapacityPlan
	retired := map[string]bool{}
	for _, id := range st.Retired {
		retired[id] = true
	}
	// A key tagged with the id of a rotation that was rolled back was
	// created after that rollback proved the old key served and deleted the
	// rotation's key: by an instance that lost its lease and could no
	// longer journal it (journal "etcd"), or by a provider's late answer.
	// No sink ever served it, so it is rekey's to delete.
	rolledBack := map[string]bool{}
	for _, h := range st.History {
		if h.Result == string(StepRolledBack) && h.ID != "" {
			rolledBack[h.ID] = true
		}
	}
	var remaining []plugin.KeyInfo
	for _, k := range keys {
		if retired[k.ID] || k.ID != st.CurrentKeyID && k.RotationID != "" && rolledBack[k.RotationID] {
			plan.DeleteFirst = append(plan.DeleteFirst, k.ID)
			continue
		}
		remaining = append(remaining, k)
	}
	for _, k := range remaining {
		switch {
		case st.CurrentKeyID != "" && k.ID == st.CurrentKeyID:
			plan.Old = append(plan.Old, k.ID)
		case st.CurrentKeyID == "" && len(remaining) == 1:
			// The one key in use before rekey managed this credential.
			plan.Old = append(plan.Old, k.ID)
		default:
			plan.Unknown = append(plan.Unknown, k)
		}
	}
	if maxKeys > 0 && len(remaining)+1 > maxKeys {
		var b strings.Builder
		for i, k := range plan.Unknown {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s, created %s)", secret.Mask(k.ID), k.Status, k.CreatedAt.Format(time.RFC3339))
		}
		return plan, fmt.Errorf("%w: the provider allows %d keys and holds %d; %d of them unknown to rekey's journal: %s. "+
			"rekey never deletes a key it cannot prove is its own and unused: confirm the key is unused, delete it at the provider, then run rekey rotate again",
			plugin.ErrLimit, maxKeys, len(keys), len(plan.Unknown), b.String())
	}
	return plan, nil
}

// OrphanKeys decides which of the keys listed at the provider were created
// by the rotation rec although its journal never learned their ids (a crash
// between the provider's answer and the journal write): nobody can hold
// their values, so they are rekey's to delete. A key is such an orphan when
// no journal entry knows it and it is tagged with rec's rotation id, or,
// where the provider cannot tag, it was created at or after the journaled
// intent (to the second: providers report whole seconds). Without a
// journaled intent nothing is an orphan.
func OrphanKeys(keys []plugin.KeyInfo, st PolicyState, rec Record) []string {
	if rec.IntentAt.IsZero() {
		return nil
	}
	known := map[string]bool{}
	if st.CurrentKeyID != "" {
		known[st.CurrentKeyID] = true
	}
	for _, id := range st.Retired {
		known[id] = true
	}
	for _, id := range rec.OldKeyIDs {
		known[id] = true
	}
	since := rec.IntentAt.Truncate(time.Second)
	var out []string
	for _, k := range keys {
		if known[k.ID] {
			continue
		}
		tagged := k.RotationID == rec.ID
		untaggedAfterIntent := k.RotationID == "" && !k.CreatedAt.IsZero() && !k.CreatedAt.Before(since)
		if tagged || untaggedAfterIntent {
			out = append(out, k.ID)
		}
	}
	return out
}
