package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
)

// retry runs an idempotent external call, backing off on errors that are
// not permanent, until the policy's step timeout.
func (e *Engine) retry(ctx context.Context, p *policies.Policy, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.StepTimeout)
	defer cancel()
	return retry.Do(ctx, retry.Options{Backoff: retry.Backoff{Initial: 250 * time.Millisecond, Max: 15 * time.Second, Rand: e.rnd}}, fn)
}

// runProbe runs one probe until it passes the required number of times in
// a row, backing off between failures, within the probe's timeout.
func (r *run) runProbe(ctx context.Context, pb policies.ProbeBlock, key plugin.Key) error {
	timeout, interval, need := pb.Timeout, pb.Interval, max(pb.Successes, 1)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := retry.Backoff{Initial: interval, Max: max(interval, 30*time.Second), NoJitter: true}
	passed, attempts, failures := 0, 0, 0
	for {
		attempts++
		t0 := time.Now()
		err := pb.Probe.Check(ctx, key)
		lg := r.log.Debug().Str("probe", pb.Kind).Str("target", string(pb.Target)).Int("attempt", attempts).Str("duration", time.Since(t0).Round(time.Millisecond).String())
		if err != nil {
			lg = lg.Str("error", r.clean(err).Error())
		}
		lg.Msg("probe attempt")
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
			failures++
			wait = backoff.Delay(failures)
		}
		if retry.Sleep(ctx, wait) != nil {
			if err == nil {
				err = fmt.Errorf("passed %d of %d required consecutive checks", passed, need)
			}
			return fmt.Errorf("did not pass within %s (%d attempts): %w", timeout, attempts, err)
		}
	}
}

// withStepTimeout bounds a single external call that is not retried by
// the policy's step timeout: every wait has a bound.
func withStepTimeout(ctx context.Context, p *policies.Policy) (context.Context, context.CancelFunc) {
	if p.StepTimeout <= 0 {
		return context.WithTimeout(ctx, policies.DefaultStepTimeout)
	}
	return context.WithTimeout(ctx, p.StepTimeout)
}

func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) error {
	d := t.Sub(now())
	if d <= 0 {
		return nil
	}
	return retry.Sleep(ctx, d)
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
