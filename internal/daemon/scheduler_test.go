package daemon

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// TestSchedulerLoop drives the engine's scheduler (rotator.Engine.Run) on
// a fake clock (testing/synctest): a due policy rotates at once, not again
// before its period, again after it, a failing policy backs off instead
// of spinning, and cancelling returns once the rotation in flight
// finished.
func TestSchedulerLoop(t *testing.T) {
	dir := testConfig(t, "")
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, dir)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		status := func() rotator.PolicyStatus {
			t.Helper()
			st, err := e.Status(context.Background())
			if err != nil || len(st) != 1 {
				t.Fatalf("status: %v %v", st, err)
			}
			return st[0]
		}
		waitSettled := func() rotator.PolicyStatus {
			t.Helper()
			for range 1000 {
				synctest.Wait()
				if s := status(); s.InFlight == nil && s.Generation > 0 {
					return s
				}
				time.Sleep(time.Second)
			}
			t.Fatal("never settled")
			return rotator.PolicyStatus{}
		}
		s := waitSettled()
		if s.Generation != 1 || s.LastResult != "done" {
			t.Fatalf("first rotation: %+v", s)
		}
		first := time.Now()
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if s := status(); s.Generation != 1 {
			t.Fatalf("rotated again before the period: %+v", s)
		}
		time.Sleep(2 * time.Minute)
		s = waitSettled()
		if s.Generation != 2 || s.LastResult != "done" {
			t.Fatalf("second rotation: %+v", s)
		}
		if d := time.Since(first); d < time.Hour || d > time.Hour+3*time.Minute {
			t.Fatalf("the second rotation ran %s after the first", d)
		}

		// The dependent probe hangs: the attempt fails and rolls back; the
		// next attempt waits for the failure backoff.
		led.setBlock(true)
		time.Sleep(time.Hour)
		synctest.Wait()
		led.unblock()
		s = waitSettled()
		if s.Generation != 3 || s.LastResult != "rolled_back" || s.Failures != 1 {
			t.Fatalf("failed attempt: %+v", s)
		}
		checks := led.get().checks
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if s := status(); s.Generation != 3 || led.get().checks != checks {
			t.Fatalf("retried within 30s of a failure: %+v", s)
		}
		if !s.NextDue.After(time.Now()) {
			t.Fatalf("next due %s is not in the future (backoff)", s.NextDue)
		}

		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Run did not return after cancel")
		}
	})
}
