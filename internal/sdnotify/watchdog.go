package sdnotify

import (
	"context"
	"os"
	"time"
)

// Watchdog keeps systemd's watchdog (WatchdogSec=) fed while the engine is
// healthy. It pings at half the timeout, and only when the alive callback
// reports that the engine loop is making progress, so a hung engine stops
// the pings and systemd restarts the service.
type Watchdog struct {
	interval time.Duration
	addr     string
	// OnError, if set, is called with each failed ping. Failures do not
	// stop the watchdog: the next tick tries again.
	OnError func(error)
}

// NewWatchdog returns the watchdog systemd enabled for this process, or
// ok=false when none is enabled (no WatchdogSec=, or not run by systemd).
func NewWatchdog() (w *Watchdog, ok bool) {
	d, ok := WatchdogInterval()
	addr := os.Getenv("NOTIFY_SOCKET")
	if !ok || addr == "" {
		return nil, false
	}
	return &Watchdog{interval: d, addr: addr}, true
}

// Interval is the watchdog timeout set by systemd.
func (w *Watchdog) Interval() time.Duration { return w.interval }

// Run pings the watchdog every Interval/2 for as long as ctx is not done,
// skipping each tick at which alive returns false. alive must be quick and
// must not block; a typical implementation reports whether the engine's
// scheduling loop has completed an iteration recently. Run returns when
// ctx is done.
func (w *Watchdog) Run(ctx context.Context, alive func() bool) {
	period := w.interval / 2
	if period <= 0 {
		period = time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil || !alive() {
			continue
		}
		if err := send(w.addr, StateWatchdog); err != nil && w.OnError != nil {
			w.OnError(err)
		}
	}
}
