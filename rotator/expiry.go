package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// ExpiryNotice decides which expiry event, if any, is due for the current
// key of a policy with no rotation in flight: expired once the key expired
// (always), expiring when the time left crossed one of the policy's
// expiry_notify thresholds that was not notified yet, while rotations fail
// (failures counted, or stuck). threshold is the crossed threshold; next is
// when to look again (zero: nothing left to notify). A pure function.
func ExpiryNotice(p *policies.Policy, st PolicyState, now time.Time) (res Result, threshold time.Duration, next time.Time) {
	exp := st.CurrentKeyExpires
	if exp.IsZero() || st.ExpiredNotified {
		return "", 0, time.Time{}
	}
	if !now.Before(exp) {
		return ResultExpired, 0, time.Time{}
	}
	left := exp.Sub(now)
	failing := st.Failures > 0 || st.Stuck
	for i := len(p.Schedule.ExpiryNotify) - 1; i >= 0; i-- {
		t := p.Schedule.ExpiryNotify[i] // shortest first
		if st.ExpiryNotified != 0 && t >= st.ExpiryNotified {
			continue
		}
		if left <= t && failing {
			return ResultExpiring, t, nextThreshold(p, t, exp, now)
		}
	}
	return "", 0, nextThreshold(p, st.ExpiryNotified, exp, now)
}

// nextThreshold is the next time after now an expiry event may be due,
// once threshold below was notified: when a shorter threshold is crossed,
// else the expiry itself.
func nextThreshold(p *policies.Policy, below time.Duration, exp, now time.Time) time.Time {
	for _, t := range p.Schedule.ExpiryNotify { // longest first
		if at := exp.Add(-t); (below == 0 || t < below) && at.After(now) {
			return at
		}
	}
	return exp
}

// checkExpiry emits the expiring or expired event due for the policy's
// current key (ExpiryNotice), journals that it did, and returns when to
// look again (zero: no expiry to watch).
func (e *Engine) checkExpiry(ctx context.Context, p *policies.Policy, st PolicyState) time.Time {
	now := e.now()
	res, threshold, next := ExpiryNotice(p, st, now)
	if res == "" {
		return next
	}
	if _, err := e.journal.Update(ctx, p.Name, func(s *PolicyState) error {
		if res == ResultExpired {
			s.ExpiredNotified = true
		} else {
			s.ExpiryNotified = threshold
		}
		return nil
	}); err != nil {
		e.log.Warn().Str("policy", p.Name).Str("error", err.Error()).Msg("journaling an expiry notice")
		return now.Add(e.opts.RecheckInterval)
	}
	exp := st.CurrentKeyExpires
	ev := Event{Time: now, Policy: p.Name, Generation: st.Generation, Step: StepExpiry, Result: res, ExpiresAt: exp, Labels: p.Labels}
	if res == ResultExpired {
		ev.Error = fmt.Sprintf("the current key expired at %s before a rotation replaced it: dependents that still use it fail (last error: %s)", exp.UTC().Format(time.RFC3339), st.LastError)
		e.log.Error().Str("policy", p.Name).Time("expires_at", exp).Msg(ev.Error)
	} else {
		ev.Error = fmt.Sprintf("the current key expires at %s, in %s, and rotations keep failing (%d failed attempts, last: %s)", exp.UTC().Format(time.RFC3339), exp.Sub(now).Round(time.Second), st.Failures, st.LastError)
		e.log.Warn().Str("policy", p.Name).Time("expires_at", exp).Msg(ev.Error)
	}
	if a := e.opts.Audit; a != nil {
		if err := a.Record(ctx, ev); err != nil {
			e.log.Error().Str("policy", p.Name).Str("error", err.Error()).Msg("audit log write failed")
		}
	}
	e.emit(ctx, ev)
	return next
}
