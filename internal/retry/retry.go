// Package retry is the one backoff loop of rekey: the engine's step
// retries, the Vault connection, the HTTP client of the http-based kinds
// and the notification dispatcher all run their attempts through Do.
//
// Do is context-aware (a wait ends when the context does), jittered (each
// wait is drawn from the upper half of its exponential delay), bounded (by
// attempts, by the context's deadline, or both) and honours a wait the
// failure asks for (an HTTP Retry-After).
package retry

import (
	"context"
	mrand "math/rand/v2"
	"time"

	"github.com/rekeyhq/rekey/plugin"
)

// Backoff is an exponential delay: Initial after the first failure,
// doubled after each further one, capped at Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Rand returns a number in [0,1) for the jitter; nil means math/rand.
	Rand func() float64
	// NoJitter makes every delay the full exponential delay.
	NoJitter bool
}

// Delay returns the wait after the n-th failure (n >= 1): the exponential
// delay d, or with jitter a value in [d/2, d).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	if d <= 0 {
		return 0
	}
	for i := 1; i < n && (b.Max <= 0 || d < b.Max); i++ {
		if d > (1<<62)/2 {
			break
		}
		d *= 2
	}
	if b.Max > 0 {
		d = min(d, b.Max)
	}
	if b.NoJitter {
		return d
	}
	r := mrand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Reason says why Do stopped.
type Reason int

// The reasons Do stops without success.
const (
	// Final: the error is not retryable (by default: plugin.IsPermanent).
	Final Reason = iota + 1
	// Exhausted: Attempts were made.
	Exhausted
	// Canceled: the context was done when the attempt failed.
	Canceled
	// Deadline: FitDeadline is set and the next wait would end after the
	// context's deadline.
	Deadline
	// Interrupted: the context ended a wait.
	Interrupted
)

// Options configure Do. The zero value retries every error that is not
// plugin.Permanent without limit until the context is done, with a jittered
// backoff from 250 ms to 15 s.
type Options struct {
	Backoff
	// Attempts bounds the calls of fn; 0 means until the context is done.
	Attempts int
	// Retryable reports whether a failure is worth another attempt;
	// nil means it is unless plugin.IsPermanent.
	Retryable func(err error) bool
	// MinWait returns the least wait a failure asks for (Retry-After);
	// the wait is the larger of it and the backoff.
	MinWait func(err error) time.Duration
	// FitDeadline gives up at once when the next wait would end after the
	// context's deadline, instead of waiting for the deadline.
	FitDeadline bool
	// OnRetry is called before each wait with the attempt that failed.
	OnRetry func(attempt int, wait time.Duration, err error)
	// GiveUp, when set, rewrites the error Do returns after a failure;
	// without it Do returns fn's last error as it is.
	GiveUp func(why Reason, attempts int, err error) error

	// sleep replaces the timer in tests.
	sleep func(ctx context.Context, d time.Duration) error
}

// Default delays of the zero Options.
const (
	DefaultInitial = 250 * time.Millisecond
	DefaultMax     = 15 * time.Second
)

// Do calls fn until it returns nil, its error is not retryable, Attempts
// calls were made, or ctx is done, waiting between calls. fn must be
// idempotent: a failed call may have taken effect.
func Do(ctx context.Context, o Options, fn func(ctx context.Context) error) error {
	if o.Initial <= 0 {
		o.Initial = DefaultInitial
	}
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	retryable := o.Retryable
	if retryable == nil {
		retryable = func(err error) bool { return !plugin.IsPermanent(err) }
	}
	sleep := o.sleep
	if sleep == nil {
		sleep = Sleep
	}
	giveUp := func(why Reason, n int, err error) error {
		if o.GiveUp != nil {
			return o.GiveUp(why, n, err)
		}
		return err
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		switch {
		case err == nil:
			return nil
		case !retryable(err):
			return giveUp(Final, attempt, err)
		case o.Attempts > 0 && attempt >= o.Attempts:
			return giveUp(Exhausted, attempt, err)
		case ctx.Err() != nil:
			return giveUp(Canceled, attempt, err)
		}
		wait := o.Delay(attempt)
		if o.MinWait != nil {
			wait = max(wait, o.MinWait(err))
		}
		if dl, ok := ctx.Deadline(); ok && o.FitDeadline && time.Until(dl) < wait {
			return giveUp(Deadline, attempt, err)
		}
		if o.OnRetry != nil {
			o.OnRetry(attempt, wait, err)
		}
		if sleep(ctx, wait) != nil {
			return giveUp(Interrupted, attempt, err)
		}
	}
}

// Sleep waits d, or less when ctx is done first; it returns nil after the
// full wait and ctx.Err() otherwise.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
