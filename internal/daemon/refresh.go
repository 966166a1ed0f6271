package daemon

import (
	"context"
	"fmt"
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
// current: after every terminal event, after reloads, and every 30s.
type metricsRefresher struct {
	e    *rotator.Engine
	m    *metrics.Metrics
	kick chan struct{}
}

func newMetricsRefresher(e *rotator.Engine, m *metrics.Metrics) *metricsRefresher {
	return &metricsRefresher{e: e, m: m, kick: make(chan struct{}, 1)}
}

// Observe implements rotator.Observer.
func (r *metricsRefresher) Observe(_ context.Context, ev rotator.Event) {
	switch ev.Step {
	case rotator.StepDone, rotator.StepCommit, rotator.StepRolledBack, rotator.StepFailed:
		r.trigger()
	}
	if ev.Result == rotator.ResultStuck {
		r.trigger()
	}
}

func (r *metricsRefresher) trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *metricsRefresher) run(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		st, err := r.e.Status(ctx)
		if err != nil {
			continue
		}
		if sdnotify.Enabled() {
			_ = sdnotify.Status(statusLine(st, time.Now()))
		}
		for _, s := range st {
			p, ok := r.e.Policy(s.Policy)
			if !ok {
				continue
			}
			r.m.SetPolicyState(s.Policy, metrics.PolicyState{ProviderKind: p.Provider.Kind, Next: s.NextDue, KeyCreated: s.KeyCreated,
				MaxAge: p.Schedule.MaxAge, KeyExpires: s.KeyExpires, Labels: p.Labels, LastSuccess: s.LastSuccess, Stuck: s.Stuck, Alert: s.Alert != ""})
		}
	}
}
