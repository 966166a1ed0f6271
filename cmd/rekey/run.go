package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/sdnotify"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/notifiers/dispatch"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// ShutdownTimeout bounds how long the daemon waits, after SIGINT or
// SIGTERM, for rotations in flight to reach a safe point.
const ShutdownTimeout = 30 * time.Second

// AuditFile is the audit log's name inside state_dir.
const AuditFile = "audit.log"

func (a *app) cmdRun(args []string) int {
	fs := a.flags("run")
	cfgPath := configFlag(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if handled, code := runHosted(a, *cfgPath); handled {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.daemon(ctx, *cfgPath)
}

// daemon runs the scheduler until ctx is cancelled. SIGHUP reloads the
// configuration: a valid set replaces the running one atomically, an
// invalid set is rejected as a whole and the last good set keeps running.
func (a *app) daemon(ctx context.Context, cfgPath string) int {
	cfg, ld := a.loadConfig(cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	log := newLogger(a.stderr, cfg.Log)
	if err := checkFiles(cfg, ld.Files()); err != nil {
		log.Error().Err(err).Msg("refusing to start: files others could change or read")
		return ExitConfig
	}
	hardenProcess(cfg, log)

	j, err := rotator.OpenBoltJournal(cfg.StateDir)
	if err != nil {
		log.Error().Err(err).Msg("cannot open the journal")
		return ExitRuntime
	}
	defer j.Close()
	engine, err := rotator.New(rotator.Options{Journal: j, Logger: log})
	if err != nil {
		log.Error().Err(err).Msg("cannot start the engine")
		return ExitRuntime
	}
	engine.SetPolicies(cfg.Policies)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// Stop the background work (sockets, connections, notifiers), then wait.
	defer wg.Wait()
	defer cancel()
	goOwned := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	conns := []*plugin.Connections{cfg.Connections}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	startConnections(runCtx, goOwned, cfg.Connections, log)

	m := metrics.New(version)
	m.ConfigLoaded(true, time.Now())
	engine.AddObserver(m)
	aud, err := audit.Open(filepath.Join(cfg.StateDir, AuditFile))
	if err != nil {
		log.Error().Err(err).Msg("cannot open the audit log")
		return ExitRuntime
	}
	defer aud.Close()
	aud.OnError = func(err error) { log.Error().Err(err).Msg("writing the audit log") }
	engine.AddObserver(aud)
	notify := newNotifications(runCtx, cfg, engine, m, log)
	defer func() { notify.close() }()
	refresh := newMetricsRefresher(engine, m)
	engine.AddObserver(refresh)
	goOwned(func() { refresh.run(runCtx) })

	ln, err := control.Listen(control.SocketPath(cfg.StateDir))
	if err != nil {
		log.Error().Err(err).Msg("cannot open the control socket")
		return ExitRuntime
	}
	srv := &control.Server{Engine: engine}
	goOwned(func() {
		if err := srv.Serve(runCtx, ln); err != nil {
			log.Error().Err(err).Msg("control socket stopped")
		}
	})
	var ready atomic.Bool
	if cfg.Server != nil {
		hl, err := net.Listen("tcp", cfg.Server.Listen)
		if err != nil {
			log.Error().Err(err).Str("listen", cfg.Server.Listen).Msg("cannot listen for metrics and health")
			return ExitRuntime
		}
		goOwned(func() { serveHTTP(runCtx, hl, m, engine, &ready, log) })
	}

	if err := engine.Reconcile(ctx); err != nil {
		log.Error().Err(err).Msg("reconciling the journal failed")
		return ExitRuntime
	}
	log.Info().Int("policies", len(cfg.Policies)).Str("state_dir", cfg.StateDir).Str("version", version).Msg("rekey started")

	schedCtx, schedCancel := context.WithCancel(runCtx)
	defer schedCancel()
	done := make(chan error, 1)
	go func() { done <- engine.Run(schedCtx) }()
	ready.Store(true)
	refresh.trigger()
	notifyState(log, sdnotify.Ready)
	if w, ok := sdnotify.NewWatchdog(); ok {
		w.OnError = func(err error) { log.Warn().Err(err).Msg("watchdog ping failed") }
		log.Info().Dur("interval", w.Interval()).Msg("systemd watchdog enabled")
		goOwned(func() { w.Run(runCtx, engine.Alive) })
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			notifyState(log, sdnotify.Reloading)
			start := time.Now()
			if next := a.reload(cfgPath, cfg, log); next != nil {
				startConnections(runCtx, goOwned, next.Connections, log)
				conns = append(conns, next.Connections)
				engine.SetPolicies(next.Policies)
				notify = notify.swap(runCtx, next, engine, m, log)
				for _, p := range cfg.Policies {
					if !hasPolicy(next, p.Name) {
						m.RemovePolicy(p.Name)
					}
				}
				cfg = next
				m.ConfigLoaded(true, time.Now())
				log.Info().Int("policies", len(next.Policies)).Dur("took", time.Since(start)).Msg("configuration reloaded")
			} else {
				m.ConfigLoaded(false, time.Now())
			}
			if err := aud.Reopen(); err != nil {
				log.Error().Err(err).Msg("reopening the audit log")
			}
			refresh.trigger()
			notifyState(log, sdnotify.Ready)
		case err := <-done:
			if err != nil {
				log.Error().Err(err).Msg("scheduler stopped")
				return ExitRuntime
			}
			return ExitOK
		case <-ctx.Done():
			notifyState(log, sdnotify.Stopping)
			log.Info().Msg("stopping: letting rotations in flight reach a safe point")
			schedCancel()
			select {
			case <-done:
				log.Info().Msg("stopped")
			case <-time.After(ShutdownTimeout):
				log.Warn().Dur("timeout", ShutdownTimeout).Msg("rotations did not reach a safe point in time; the journal records where they stopped and the next start resumes them")
			}
			return ExitOK
		}
	}
}

func hasPolicy(cfg *policies.Config, name string) bool {
	for _, p := range cfg.Policies {
		if p.Name == name {
			return true
		}
	}
	return false
}

// hardenProcess disables core dumps and locks memory (unless
// disable_mlock), saying what it could and could not do.
func hardenProcess(cfg *policies.Config, log zerolog.Logger) {
	if err := harden.DisableCoreDumps(); err != nil {
		log.Warn().Err(err).Msg("could not disable core dumps")
	}
	if cfg.DisableMlock {
		log.Warn().Msg("memory locking disabled (disable_mlock = true): secret values may be written to swap")
		return
	}
	if err := harden.LockMemory(); err != nil {
		log.Warn().Err(err).Msg("could not lock memory: secret values may be written to swap; raise the memlock limit (the systemd unit sets LimitMEMLOCK=infinity) or set disable_mlock = true to silence this")
		return
	}
	log.Info().Msg("memory locked (mlockall): secret values are not written to swap")
}

func notifyState(log zerolog.Logger, fn func() error) {
	if err := fn(); err != nil {
		log.Warn().Err(err).Msg("notifying systemd")
	}
}

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

// serveHTTP serves /metrics, /healthz (the process answers) and /readyz
// (the journal is reconciled and the scheduler loop turns).
func serveHTTP(ctx context.Context, ln net.Listener, m *metrics.Metrics, e *rotator.Engine, ready *atomic.Bool, log zerolog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() || !e.Alive() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server stopped")
		}
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
				MaxAge: p.Schedule.MaxAge, LastSuccess: s.LastSuccess, Stuck: s.Stuck})
		}
	}
}

// notifications is the running notifier dispatcher and its engine handle.
type notifications struct {
	d      *dispatch.Dispatcher
	remove func()
}

func newNotifications(ctx context.Context, cfg *policies.Config, e *rotator.Engine, m *metrics.Metrics, log zerolog.Logger) *notifications {
	var routes []dispatch.Route
	for _, p := range cfg.Policies {
		for _, nb := range p.Notify {
			routes = append(routes, dispatch.Route{Policy: p.Name, Kind: nb.Kind, On: nb.On, Notifier: nb.Notifier})
		}
	}
	d := dispatch.New(routes, dispatch.Options{
		OnDrop: m.NotificationFailed,
		OnFailure: func(kind string, msg notifiers.Message, err error) {
			log.Error().Err(err).Str("notifier", kind).Str("policy", msg.Policy).Str("event", msg.Event).Msg("notification not delivered")
			m.NotificationFailed(kind)
		},
	})
	d.Start(ctx)
	return &notifications{d: d, remove: e.AddObserver(d)}
}

// swap starts the dispatcher of a new configuration, then retires the old
// one (which delivers what it has queued).
func (n *notifications) swap(ctx context.Context, cfg *policies.Config, e *rotator.Engine, m *metrics.Metrics, log zerolog.Logger) *notifications {
	next := newNotifications(ctx, cfg, e, m, log)
	n.close()
	return next
}

func (n *notifications) close() {
	n.remove()
	n.d.Close()
}

// reload loads the configuration again; it returns nil (and logs why) when
// the new set is invalid, so that the running set stays.
func (a *app) reload(path string, cur *policies.Config, log zerolog.Logger) *policies.Config {
	ld := policies.NewLoader()
	next, diags := ld.Load(path)
	if diags.HasErrors() || next == nil {
		var buf bytes.Buffer
		_ = policies.WriteDiagnostics(&buf, ld.Files(), diags, false)
		log.Error().Str("diagnostics", buf.String()).Msg("reload rejected: the configuration is invalid; the last good configuration keeps running")
		return nil
	}
	if err := checkFiles(next, ld.Files()); err != nil {
		log.Error().Err(err).Msg("reload rejected: files others could change or read; the last good configuration keeps running")
		next.Connections.Close()
		return nil
	}
	if next.StateDir != cur.StateDir {
		log.Error().Str("state_dir", next.StateDir).Msg("reload rejected: state_dir cannot change while running; restart the daemon")
		next.Connections.Close()
		return nil
	}
	return next
}

func startConnections(ctx context.Context, goOwned func(func()), conns *plugin.Connections, log zerolog.Logger) {
	for _, c := range conns.All() {
		s, ok := c.(plugin.Starter)
		if !ok {
			continue
		}
		goOwned(func() {
			if err := s.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error().Err(err).Msg("connection stopped")
			}
		})
	}
}
