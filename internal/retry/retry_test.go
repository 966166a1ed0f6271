package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
)

func TestDelay(t *testing.T) {
	half := func() float64 { return 0.5 }
	zero := func() float64 { return 0 }
	for _, tc := range []struct {
		name string
		b    Backoff
		n    int
		want time.Duration
	}{
		{"first, no jitter", Backoff{Initial: time.Second, Max: time.Minute, NoJitter: true}, 1, time.Second},
		{"doubles", Backoff{Initial: time.Second, Max: time.Minute, NoJitter: true}, 3, 4 * time.Second},
		{"capped", Backoff{Initial: time.Second, Max: 5 * time.Second, NoJitter: true}, 4, 5 * time.Second},
		{"huge n stays capped", Backoff{Initial: time.Second, Max: 30 * time.Second, NoJitter: true}, 1000, 30 * time.Second},
		{"no cap does not overflow", Backoff{Initial: time.Second, NoJitter: true}, 1000, time.Duration(1<<62) / time.Second * time.Second},
		{"jitter low end", Backoff{Initial: time.Second, Max: time.Minute, Rand: zero}, 1, 500 * time.Millisecond},
		{"jitter middle", Backoff{Initial: time.Second, Max: time.Minute, Rand: half}, 2, 1500 * time.Millisecond},
		{"jitter of the cap", Backoff{Initial: 250 * time.Millisecond, Max: 15 * time.Second, Rand: zero}, 20, 7500 * time.Millisecond},
		{"zero initial", Backoff{}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.b.Delay(tc.n)
			if tc.name == "no cap does not overflow" {
				if got <= 0 {
					t.Fatalf("Delay(%d) = %v, overflowed", tc.n, got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("Delay(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
	b := Backoff{Initial: time.Second, Max: 8 * time.Second}
	for n := 1; n < 10; n++ {
		d, full := b.Delay(n), Backoff{Initial: time.Second, Max: 8 * time.Second, NoJitter: true}.Delay(n)
		if d < full/2 || d > full {
			t.Errorf("Delay(%d) = %v, outside [%v, %v]", n, d, full/2, full)
		}
	}
}

var (
	errTransient = errors.New("transient")
	errFinal     = plugin.Permanent(errors.New("final"))
)

type fail struct {
	err  error
	wait time.Duration
}

func (f *fail) Error() string { return f.err.Error() }
func (f *fail) Unwrap() error { return f.err }

func TestDo(t *testing.T) {
	type result struct {
		calls  int
		waits  []time.Duration
		why    Reason
		err    error
		retrys []int
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		opts    Options
		errs    []error // the answers of fn in turn; after them, nil
		sleepOK int     // sleeps that finish; later ones are interrupted (-1: all)
		want    result
	}{
		{
			name: "success at once", errs: nil, sleepOK: -1,
			want: result{calls: 1},
		},
		{
			name: "two transient failures, then success", errs: []error{errTransient, errTransient}, sleepOK: -1,
			opts: Options{Backoff: Backoff{Initial: time.Second, Max: 10 * time.Second, NoJitter: true}},
			want: result{calls: 3, waits: []time.Duration{time.Second, 2 * time.Second}, retrys: []int{1, 2}},
		},
		{
			name: "zero options use the default delays", errs: []error{errTransient}, sleepOK: -1,
			opts: Options{Backoff: Backoff{NoJitter: true}},
			want: result{calls: 2, waits: []time.Duration{DefaultInitial}, retrys: []int{1}},
		},
		{
			name: "permanent error stops at once", errs: []error{errTransient, errFinal, errTransient}, sleepOK: -1,
			opts: Options{Backoff: Backoff{Initial: time.Second, NoJitter: true}},
			want: result{calls: 2, waits: []time.Duration{time.Second}, why: Final, err: errFinal, retrys: []int{1}},
		},
		{
			name: "attempts bound", errs: []error{errTransient, errTransient, errTransient, errTransient}, sleepOK: -1,
			opts: Options{Attempts: 3, Backoff: Backoff{Initial: time.Second, NoJitter: true}},
			want: result{calls: 3, waits: []time.Duration{time.Second, 2 * time.Second}, why: Exhausted, err: errTransient, retrys: []int{1, 2}},
		},
		{
			name: "custom retryable", errs: []error{errTransient}, sleepOK: -1,
			opts: Options{Retryable: func(err error) bool { return !errors.Is(err, errTransient) }},
			want: result{calls: 1, why: Final, err: errTransient},
		},
		{
			name: "retry-after longer than the backoff wins", errs: []error{&fail{errTransient, time.Minute}, &fail{errTransient, time.Millisecond}}, sleepOK: -1,
			opts: Options{
				Backoff: Backoff{Initial: time.Second, NoJitter: true},
				MinWait: func(err error) time.Duration {
					var f *fail
					if errors.As(err, &f) {
						return f.wait
					}
					return 0
				},
			},
			want: result{calls: 3, waits: []time.Duration{time.Minute, 2 * time.Second}, retrys: []int{1, 2}},
		},
		{
			name: "context done when the call fails", ctx: canceled, errs: []error{errTransient}, sleepOK: -1,
			want: result{calls: 1, why: Canceled, err: errTransient},
		},
		{
			name: "wait interrupted", errs: []error{errTransient, errTransient, errTransient}, sleepOK: 1,
			opts: Options{Backoff: Backoff{Initial: time.Second, NoJitter: true}},
			want: result{calls: 2, waits: []time.Duration{time.Second, 2 * time.Second}, why: Interrupted, err: errTransient, retrys: []int{1, 2}},
		},
		{
			name: "wait past the deadline is not begun", ctx: withDeadline(time.Hour), errs: []error{errTransient, errTransient}, sleepOK: -1,
			opts: Options{FitDeadline: true, Backoff: Backoff{Initial: 2 * time.Hour, Max: 3 * time.Hour, NoJitter: true}},
			want: result{calls: 1, why: Deadline, err: errTransient},
		},
		{
			name: "without FitDeadline the wait runs into the deadline", ctx: withDeadline(time.Hour), errs: []error{errTransient, errTransient}, sleepOK: 0,
			opts: Options{Backoff: Backoff{Initial: 2 * time.Hour, Max: 3 * time.Hour, NoJitter: true}},
			want: result{calls: 1, waits: []time.Duration{2 * time.Hour}, why: Interrupted, err: errTransient, retrys: []int{1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var got result
			o := tc.opts
			o.sleep = func(ctx context.Context, d time.Duration) error {
				got.waits = append(got.waits, d)
				if tc.sleepOK >= 0 && len(got.waits) > tc.sleepOK {
					return context.Canceled
				}
				return nil
			}
			o.OnRetry = func(attempt int, wait time.Duration, err error) {
				got.retrys = append(got.retrys, attempt)
				if err == nil {
					t.Error("OnRetry without an error")
				}
			}
			o.GiveUp = func(why Reason, attempts int, err error) error {
				got.why = why
				if attempts != got.calls {
					t.Errorf("GiveUp after %d attempts, fn called %d times", attempts, got.calls)
				}
				return fmt.Errorf("gave up: %w", err)
			}
			got.err = Do(ctx, o, func(context.Context) error {
				got.calls++
				if got.calls <= len(tc.errs) {
					return tc.errs[got.calls-1]
				}
				return nil
			})
			if got.calls != tc.want.calls || got.why != tc.want.why || fmt.Sprint(got.waits) != fmt.Sprint(tc.want.waits) || fmt.Sprint(got.retrys) != fmt.Sprint(tc.want.retrys) {
				t.Errorf("got calls %d, waits %v, retries %v, reason %d; want %d, %v, %v, %d", got.calls, got.waits, got.retrys, got.why, tc.want.calls, tc.want.waits, tc.want.retrys, tc.want.why)
			}
			if (got.err == nil) != (tc.want.err == nil) || (tc.want.err != nil && !errors.Is(got.err, tc.want.err)) {
				t.Errorf("err = %v, want %v", got.err, tc.want.err)
			}
		})
	}
}

func withDeadline(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	_ = cancel // ends with the test process; the timer is an hour
	return ctx
}

// TestDoRealTimer runs the real timer: a short wait ends, a cancelled
// context ends a long one.
func TestDoRealTimer(t *testing.T) {
	calls := 0
	err := Do(context.Background(), Options{Backoff: Backoff{Initial: time.Millisecond}}, func(context.Context) error {
		calls++
		if calls < 3 {
			return errTransient
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Do = %v after %d calls, want nil after 3", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = Do(ctx, Options{Backoff: Backoff{Initial: time.Hour}}, func(context.Context) error {
		cancel()
		return errTransient
	})
	if !errors.Is(err, errTransient) {
		t.Fatalf("Do = %v, want the last error", err)
	}
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v", err)
	}
}
