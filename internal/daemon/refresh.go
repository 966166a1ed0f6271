package daemon

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/sdnotify"
	"github.com/rekeyhq/rekey/rotator"
)

// statusLine summarises the policies for `systemctl status`: how many, the
// next rotation due, and how many are stuck.
func statusLine(st []rotator.PolicyStatus, now time.Time) string {
	n, stuck := 0, 0
	var next rotator.PolicyStatus
	for _, s := range st {
		if !s.Configured {
			continue
		}
		n++
		if s.Stuck {
			stuck++
		}
		if !s.NextDue.IsZero() && (next.NextDue.IsZero() || s.NextDue.Before(next.NextDue)) {
			next = s
		}
	}
	line := fmt.Sprintf("%d policies", n)
	if n == 1 {
		line = "1 policy"
	}
	if next.Policy != "" {
		if d := next.NextDue.Sub(now); d > 0 {
			line += fmt.Sprintf("; next rotation %s in %s", next.Policy, humanDuration(d))
		} else {
			line += fmt.Sprintf("; next rotation %s now", next.Policy)
		}
	}
	if stuck > 0 {
		line += fmt.Sprintf("; %d STUCK (rekey status)", stuck)
	}
	return line
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// metricsRefresher keeps the per-policy gauges (next due, key age, stuck)
// current without re-reading the whole journal for every event: a
// terminal event refreshes its own policy only; every 30 s the policies
// whose next time has come are refreshed; a reload (trigger) and every
// fullRefresh refresh every policy once. The systemd status line is
// computed from the statuses it keeps.
type metricsRefresher struct {
	e    *rotator.Engine
	m    *metrics.Metrics
	kick chan struct{}

	mu    sync.Mutex
	all   bool
	dirty map[string]bool

	// statuses are what the status line and dueAgain need of the last
	// statuses, by policy (run's goroutine only).
	statuses map[string]rotator.PolicyStatus
}

// brief keeps of a status what statusLine and dueAgain read.
func brief(s rotator.PolicyStatus) rotator.PolicyStatus {
	return rotator.PolicyStatus{Policy: s.Policy, Configured: s.Configured, Stuck: s.Stuck, NextDue: s.NextDue}
}

// fullRefresh is how often every policy is refreshed, whatever happened.
const fullRefresh = 10 * time.Minute

func newMetricsRefresher(e *rotator.Engine, m *metrics.Metrics) *metricsRefresher {
	return &metricsRefresher{e: e, m: m, kick: make(chan struct{}, 1), all: true, dirty: map[string]bool{}, statuses: map[string]rotator.PolicyStatus{}}
}

// Observe implements rotator.Observer.
func (r *metricsRefresher) Observe(_ context.Context, ev rotator.Event) {
	switch ev.Step {
	case rotator.StepDone, rotator.StepCommit, rotator.StepRolledBack, rotator.StepFailed:
		r.touch(ev.Policy)
	}
	if ev.Result == rotator.ResultStuck {
		r.touch(ev.Policy)
	}
}

func (r *metricsRefresher) touch(policy string) {
	r.mu.Lock()
	r.dirty[policy] = true
	r.mu.Unlock()
	r.wake()
}

// trigger asks for a refresh of every policy (after a reload).
func (r *metricsRefresher) trigger() {
	r.mu.Lock()
	r.all = true
	r.mu.Unlock()
	r.wake()
}

func (r *metricsRefresher) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *metricsRefresher) run(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	lastFull := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(lastFull) >= fullRefresh {
				r.trigger()
			} else {
				r.dueAgain(time.Now())
			}
		case <-r.kick:
		}
		r.mu.Lock()
		all := r.all
		names := make([]string, 0, len(r.dirty))
		for n := range r.dirty {
			names = append(names, n)
		}
		r.all = false
		clear(r.dirty)
		r.mu.Unlock()
		var st []rotator.PolicyStatus
		var err error
		switch {
		case all:
			st, err = r.e.Status(ctx)
			lastFull = time.Now()
		case len(names) > 0:
			st, err = r.e.StatusOf(ctx, names)
		default:
			continue
		}
		if err != nil {
			continue
		}
		if all {
			clear(r.statuses)
		}
		for _, s := range st {
			r.statuses[s.Policy] = brief(s)
			p, ok := r.e.Policy(s.Policy)
			if !ok {
				continue
			}
			r.m.SetPolicyState(s.Policy, metrics.PolicyState{ProviderKind: p.Provider.Kind, Next: s.NextDue, KeyCreated: s.KeyCreated,
				MaxAge: p.Schedule.MaxAge, KeyExpires: s.KeyExpires, Labels: p.Labels, LastSuccess: s.LastSuccess, Stuck: s.Stuck, Alert: s.Alert != ""})
		}
		if all {
			// A full refresh reads every policy's journal entry: return
			// its garbage (and the start-up's, on the first one) to the
			// system, or the heap keeps its high-water mark resident.
			debug.FreeOSMemory()
		}
		if sdnotify.Enabled() {
			all := make([]rotator.PolicyStatus, 0, len(r.statuses))
			for _, s := range r.statuses {
				all = append(all, s)
			}
			_ = sdnotify.Status(statusLine(all, time.Now()))
		}
	}
}

// dueAgain marks the policies whose next time has come (a window opened,
// a backoff ended, a drain is over): their next state moved with the clock.
func (r *metricsRefresher) dueAgain(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, s := range r.statuses {
		if !s.NextDue.IsZero() && !s.NextDue.After(now) {
			r.dirty[n] = true
		}
	}
}
