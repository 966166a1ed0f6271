package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/rs/zerolog"

	rekeyd "github.com/rekeyhq/rekey/internal/daemon"
	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// startupGCPercent is the garbage collector's GOGC while the daemon loads
// its configuration and starts (see lowGC).
const startupGCPercent = 25

// lowGC sets the garbage collector's percent to startupGCPercent and
// returns the function that puts the previous one back (once). Loading
// thousands of policies leaves garbage between the objects the daemon
// keeps; collected often, it does not grow the heap's spans, which stay
// resident, far beyond what is kept (idle daemon with 10,000 policies:
// RSS about 130 -> 110 MiB, peak 245 -> 170 MiB; BENCHMARKS.md).
func lowGC() (restore func()) {
	prev := debug.SetGCPercent(startupGCPercent)
	var once sync.Once
	return func() { once.Do(func() { debug.SetGCPercent(prev) }) }
}

// AuditFile is the audit log's name inside state_dir.
const AuditFile = rekeyd.AuditFile

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

// daemon runs the daemon (internal/daemon) until ctx is cancelled: it
// loads the configuration, hardens the process, turns SIGHUP into a
// reload and a second SIGINT or SIGTERM during shutdown into an immediate
// exit.
func (a *app) daemon(ctx context.Context, cfgPath string) int {
	restoreGC := lowGC()
	defer restoreGC()
	cfg, _ := a.loadConfig(cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	log := newLogger(a.stderr, cfg.Log)
	hardenProcess(cfg, log)
	d, err := rekeyd.New(cfg, rekeyd.Options{Logger: log, Version: version, Load: func() (*policies.Config, error) { return reloadConfig(cfgPath) }})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return ExitRuntime
	}

	done := make(chan struct{})
	signals := make(chan struct{})
	go func() {
		select {
		case <-d.Ready():
		case <-done:
		}
		restoreGC()
	}()
	go func() {
		defer close(signals)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		var again chan os.Signal
		for {
			select {
			case <-done:
				return
			case <-hup:
				d.Reload()
			case <-ctx.Done():
				again = make(chan os.Signal, 1)
				signal.Notify(again, os.Interrupt, syscall.SIGTERM)
				defer signal.Stop(again)
				ctx = context.Background()
			case <-again:
				log.Warn().Msg("second signal: exiting now; the journal records where rotations stand and the next start resumes them")
				os.Exit(ExitRuntime)
			}
		}
	}()
	err = d.Run(ctx)
	close(done)
	<-signals
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, rotator.ErrJournalLost), errors.Is(err, rotator.ErrJournalCorrupt):
		log.Error().Err(err).Msg("refusing to run: the journal is lost or corrupt")
	default:
		log.Error().Err(err).Msg("rekey stopped")
	}
	return ExitRuntime
}

// reloadConfig loads the configuration again for a reload, with the same
// checks as at start.
func reloadConfig(path string) (*policies.Config, error) {
	ld := policies.NewLoader()
	next, diags := ld.Load(path)
	if diags.HasErrors() || next == nil {
		if next != nil {
			next.Connections.Close()
		}
		return nil, policies.NewLoadError(ld.Files(), diags)
	}
	return next, nil
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
	// Locked pages cannot be given back to the system: return the garbage
	// of loading the configuration first, or it stays resident for good.
	runtime.GC()
	debug.FreeOSMemory()
	if err := harden.LockMemory(); err != nil {
		log.Warn().Err(err).Msg("could not lock memory: secret values may be written to swap; raise the memlock limit (the systemd unit sets LimitMEMLOCK=infinity) or set disable_mlock = true to silence this")
		return
	}
	log.Info().Msg("memory locked (mlockall): secret values are not written to swap")
}
