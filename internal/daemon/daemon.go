// Package daemon is rekey's long-running process, in the shape of
// consul-template's runner: New builds it from a loaded configuration, Run
// runs it until its context ends, and Reload swaps in a configuration
// read again. It wires the journal, the engine and its scheduler, the
// audit log, metrics, notifications, the control socket, the HTTP
// endpoints, the watchdog and the connections of each configuration
// generation.
//
// Every goroutine it starts has an owner that stops it and waits for it.
// Shutdown first lets the rotations in flight (the scheduler's and the
// control socket's) reach a safe point, and only then closes what they
// use: connections, notifications, the audit log and the journal.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/sdnotify"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// AuditFile is the audit log's name inside state_dir.
const AuditFile = "audit.log"

// DefaultShutdownWarning is how long shutdown waits for the rotations in
// flight before it says that it is still waiting (and again after each
// further period). It never closes what they use while they run.
const DefaultShutdownWarning = 30 * time.Second

// DefaultJournalCheck is how often a running daemon checks that its
// journal file is still the one it opened.
const DefaultJournalCheck = 5 * time.Second

// Options configure a Daemon.
type Options struct {
	// Logger receives the daemon's log; it is also attached to the
	// contexts given to plugins and connections (zerolog.Ctx).
	Logger zerolog.Logger
	// Load reads and validates the configuration again, for Reload. It
	// returns an error that says what is wrong when the set is invalid.
	Load func() (*policies.Config, error)
	// Version is reported by the rekey_build_info metric.
	Version string
	// ShutdownWarning defaults to DefaultShutdownWarning.
	ShutdownWarning time.Duration
	// JournalCheck defaults to DefaultJournalCheck.
	JournalCheck time.Duration
}

// Daemon is one rekey daemon over one state directory.
type Daemon struct {
	opts   Options
	log    zerolog.Logger
	cfg    *policies.Config
	reload chan struct{}
	ready  chan struct{}
	engine atomic.Pointer[rotator.Engine]
}

// New returns a daemon for a loaded, validated configuration. It starts
// nothing; Run does.
func New(cfg *policies.Config, opts Options) (*Daemon, error) {
	if cfg == nil {
		return nil, errors.New("daemon: a configuration is required")
	}
	if opts.ShutdownWarning <= 0 {
		opts.ShutdownWarning = DefaultShutdownWarning
	}
	if opts.JournalCheck <= 0 {
		opts.JournalCheck = DefaultJournalCheck
	}
	return &Daemon{opts: opts, log: opts.Logger, cfg: cfg, reload: make(chan struct{}, 1), ready: make(chan struct{})}, nil
}

// Reload asks the running daemon to read its configuration again (SIGHUP).
// A valid set replaces the running one atomically; an invalid set is
// rejected as a whole and the last good set keeps running. Rotations in
// flight finish under the set they started with, whose connections are
// closed once they are done.
func (d *Daemon) Reload() {
	select {
	case d.reload <- struct{}{}:
	default:
	}
}

// Ready is closed once the journal is reconciled and the scheduler runs.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Engine returns the running engine, or nil before Run opened it.
func (d *Daemon) Engine() *rotator.Engine { return d.engine.Load() }

// ErrJournalLost is returned by Run when the journal file was deleted or
// replaced while the daemon ran and ctx then ended.
var ErrJournalLost = rotator.ErrJournalLost

// Run runs the daemon until ctx ends, then stops it in order. It returns
// an error when the daemon could not start, when its scheduler failed, or
// (after ctx ended) when its journal was lost while it ran.
func (d *Daemon) Run(ctx context.Context) error {
	log := d.log
	cfg := d.cfg
	ctx = log.WithContext(ctx)
	auditPath := filepath.Join(cfg.StateDir, AuditFile)

	j, bolt, hanode, err := openJournal(cfg, auditPath, log)
	if err != nil {
		return fmt.Errorf("opening the journal: %w", err)
	}
	journalLost := false
	defer func() {
		if err := j.Close(); err != nil && !journalLost {
			log.Error().Err(err).Msg("closing the journal")
		}
	}()
	aud, err := audit.Open(auditPath)
	if err != nil {
		return err
	}
	defer aud.Close()
	m := metrics.New(d.opts.Version)
	eopts := engineOptions(j, aud, log)
	if hanode != nil {
		aud.SetInstance(cfg.Journal.Instance)
		hanode.register(m)
		eopts.Audit = gate{h: hanode, aud: aud}
	}
	engine, err := rotator.New(eopts)
	if err != nil {
		return fmt.Errorf("starting the engine: %w", err)
	}
	d.engine.Store(engine)
	engine.SetPolicies(cfg.Policies)
	m.ConfigLoaded(true, time.Now())
	engine.AddObserver(m)

	// Background work: stopped last, after every rotation has returned.
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stopBG()
	goBG := func(fn func()) {
		bg.Add(1)
		go func() { defer bg.Done(); fn() }()
	}

	gens := &generations{engine: engine, log: log}
	defer gens.closeAll()
	gens.start(bgCtx, cfg)

	notify := newNotifications(bgCtx, cfg, engine, m, log)
	defer func() { notify.close() }()
	refresh := newMetricsRefresher(engine, m)
	engine.AddObserver(refresh)
	goBG(func() { refresh.run(bgCtx) })

	var ready atomic.Bool
	var lostErr atomic.Pointer[error]
	if cfg.Server != nil {
		hl, err := net.Listen("tcp", cfg.Server.Listen)
		if err != nil {
			return fmt.Errorf("listening for metrics and health on %s: %w", cfg.Server.Listen, err)
		}
		h := &httpServer{metrics: m, engine: engine, ready: &ready, lost: &lostErr, log: log, alive: hanode.aliveFunc(engine)}
		goBG(func() { h.serve(bgCtx, hl) })
	}

	// Rotations: the scheduler and the control socket. Stopped first, and
	// waited for, before anything they use is closed.
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var work sync.WaitGroup
	defer d.waitWork(&work, stopWork)

	ln, err := control.Listen(control.SocketPath(cfg.StateDir))
	if err != nil {
		return err
	}
	srv := &control.Server{Engine: engine, Lost: func() error {
		if p := lostErr.Load(); p != nil {
			return *p
		}
		return nil
	}}
	if hanode != nil {
		srv.Scope = hanode.scope
	}
	work.Add(1)
	go func() {
		defer work.Done()
		if err := srv.Serve(workCtx, ln); err != nil {
			log.Error().Err(err).Msg("control socket stopped")
		}
	}()

	if hanode == nil {
		if err := engine.Reconcile(workCtx); err != nil {
			return fmt.Errorf("reconciling the journal: %w", err)
		}
	}
	log.Info().Int("policies", len(cfg.Policies)).Str("state_dir", cfg.StateDir).Str("version", d.opts.Version).Msg("rekey started")

	schedCtx, stopSched := context.WithCancel(workCtx)
	defer stopSched()
	schedDone := make(chan error, 1)
	work.Add(1)
	go func() {
		defer work.Done()
		if hanode != nil {
			schedDone <- hanode.run(schedCtx, engine)
			return
		}
		schedDone <- engine.Run(schedCtx)
	}()
	lost := make(chan error, 1)
	if bolt != nil {
		goBG(func() {
			watchJournal(bgCtx, func(context.Context) error { return bolt.Check() }, d.opts.JournalCheck, lost)
		})
	} else if hanode != nil {
		goBG(func() { watchJournal(bgCtx, hanode.journal.CheckIdentity, d.opts.JournalCheck, lost) })
	}

	ready.Store(true)
	close(d.ready)
	refresh.trigger()
	notifyState(log, sdnotify.Ready)
	if w, ok := sdnotify.NewWatchdog(); ok {
		w.OnError = func(err error) { log.Warn().Err(err).Msg("watchdog ping failed") }
		log.Info().Dur("interval", w.Interval()).Msg("systemd watchdog enabled")
		goBG(func() { w.Run(bgCtx, hanode.aliveFunc(engine)) })
	}

	for {
		select {
		case <-d.reload:
			notifyState(log, sdnotify.Reloading)
			if next := d.loadNext(cfg); next != nil {
				start := time.Now()
				gens.start(bgCtx, next)
				engine.SetPolicies(next.Policies)
				gens.retireOld(next)
				notify = notify.swap(bgCtx, next, engine, m, log)
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
		case err := <-lost:
			journalLost = true
			m.JournalOK(false)
			ready.Store(false)
			stopSched()
			ev := log.Error().Err(err)
			now := time.Now().UTC()
			var shown error
			if bolt != nil {
				rescue := filepath.Join(cfg.StateDir, rotator.JournalFile+".rescued-"+now.Format("20060102T150405Z"))
				rerr := bolt.Rescue(rescue)
				if rerr == nil {
					ev = ev.Str("rescued_journal", rescue)
				} else {
					ev = ev.AnErr("rescue_error", rerr)
				}
				shown = lostMessage(err, now, rescue, rerr)
			} else {
				shown = etcdLostMessage(err, now)
			}
			lostErr.Store(&shown)
			ev.Msg("JOURNAL LOST while running: scheduling stopped, /readyz fails; to resume: " + lostAdvice(bolt != nil))
			notifyState(log, func() error { return sdnotify.Status("JOURNAL LOST: scheduling stopped; see the log") })
		case err := <-schedDone:
			if journalLost {
				schedDone = nil
				continue
			}
			if err != nil {
				return fmt.Errorf("scheduler stopped: %w", err)
			}
			return nil
		case <-ctx.Done():
			notifyState(log, sdnotify.Stopping)
			log.Info().Msg("stopping: letting rotations in flight reach a safe point")
			stopWork()
			d.waitWork(&work, stopWork)
			log.Info().Msg("stopped")
			if journalLost {
				return fmt.Errorf("%w: stopped after the journal was deleted or replaced", ErrJournalLost)
			}
			return nil
		}
	}
}

// engineOptions are the engine's options in the daemon and in `rekey
// rotate` without a daemon: the same journal, and the same audit log as
// the engine's synchronous recorder (a failed write stops the rotation
// before its next irreversible step; the engine logs it).
func engineOptions(j rotator.Journal, aud *audit.Log, log zerolog.Logger) rotator.Options {
	o := rotator.Options{Journal: j, Logger: log}
	if aud != nil {
		o.Audit = aud
	}
	return o
}

// waitWork cancels the rotations' context and waits for the scheduler and
// the control socket to return, saying every ShutdownWarning that it
// still waits. It never gives up: closing connections or the journal
// under a running rotation could leave it half done.
func (d *Daemon) waitWork(work *sync.WaitGroup, stop context.CancelFunc) {
	stop()
	done := make(chan struct{})
	go func() { work.Wait(); close(done) }()
	t := time.NewTicker(d.opts.ShutdownWarning)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			d.log.Warn().Dur("waited", d.opts.ShutdownWarning).Msg("rotations in flight have not reached a safe point yet; still waiting (a second signal exits at once; the journal records where they stand and the next start resumes them)")
		}
	}
}

// loadNext loads the configuration again; it returns nil (and logs why)
// when the new set is rejected, so that the running set stays.
func (d *Daemon) loadNext(cur *policies.Config) *policies.Config {
	if d.opts.Load == nil {
		d.log.Error().Msg("reload rejected: this daemon has no configuration source")
		return nil
	}
	next, err := d.opts.Load()
	if err != nil || next == nil {
		const msg = "reload rejected: the configuration is invalid; the last good configuration keeps running"
		var le *policies.LoadError
		if !errors.As(err, &le) {
			d.log.Error().Err(err).Msg(msg)
			return nil
		}
		d.log.Error().Int("problems", len(le.Problems)).Msg(msg)
		for _, p := range le.Problems {
			ev := d.log.Warn()
			if p.Error {
				ev = d.log.Error()
			}
			if p.At != "" {
				ev = ev.Str("at", p.At)
			}
			ev.Str("problem", p.Summary).Str("detail", p.Detail).Msg("reload rejected")
		}
		return nil
	}
	if next.StateDir != cur.StateDir {
		d.log.Error().Str("state_dir", next.StateDir).Msg("reload rejected: state_dir cannot change while running; restart the daemon")
		next.Connections.Close()
		return nil
	}
	if journalChanged(cur.Journal, next.Journal) {
		d.log.Error().Msg("reload rejected: the journal block cannot change while running; restart the daemon")
		next.Connections.Close()
		return nil
	}
	return next
}

// lostMessage is what status, plan and rotate through the control socket
// answer once the journal is lost: that scheduling stopped, why, and what
// to do. It wraps err (and so rotator.ErrJournalLost).
func lostMessage(err error, at time.Time, rescue string, rescueErr error) error {
	next := "stop the daemon, check " + rescue + " and move it to " + rotator.JournalFile + " (or run `rekey journal recover`), then start the daemon again"
	if rescueErr != nil {
		next = "no rescue copy could be written (" + rescueErr.Error() + "): stop the daemon, restore " + rotator.JournalFile + " from a backup or run `rekey journal recover`, then start the daemon again"
	}
	return fmt.Errorf("JOURNAL LOST at %s, the daemon stopped scheduling every policy (nothing rotates until it is restarted): %w; to resume: %s",
		at.Format(time.RFC3339), err, next)
}

// etcdLostMessage is lostMessage for the journal in etcd, which rekey
// cannot rescue: it was deleted or replaced there.
func etcdLostMessage(err error, at time.Time) error {
	return fmt.Errorf("JOURNAL LOST at %s, the daemon stopped scheduling every policy (nothing rotates until it is restarted): %w; to resume: %s",
		at.Format(time.RFC3339), err, lostAdvice(false))
}

// lostAdvice says how to resume after the journal was lost under a
// running daemon.
func lostAdvice(embedded bool) string {
	if embedded {
		return "stop the daemon; if a rescued journal was written, check it and move it to journal.db, then start again"
	}
	return "stop every instance, restore etcd from a snapshot (etcdctl snapshot restore) or point prefix at the journal the instances used, then start the daemon again"
}

// watchJournal runs check every interval (it reports whether the journal
// is still the one that was opened) and sends its first failure on lost.
func watchJournal(ctx context.Context, check func(context.Context) error, every time.Duration, lost chan<- error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := check(ctx); err != nil {
				if errors.Is(err, os.ErrPermission) {
					continue
				}
				lost <- err
				return
			}
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

func notifyState(log zerolog.Logger, fn func() error) {
	if err := fn(); err != nil {
		log.Warn().Err(err).Msg("notifying systemd")
	}
}
