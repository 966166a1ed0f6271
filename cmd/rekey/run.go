package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// ShutdownTimeout bounds how long the daemon waits, after SIGINT or
// SIGTERM, for rotations in flight to reach a safe point.
const ShutdownTimeout = 30 * time.Second

func (a *app) cmdRun(args []string) int {
	fs := a.flags("run")
	cfgPath := configFlag(fs)
	if ok, code := parse(fs, args); !ok {
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
	cfg, _ := a.loadConfig(cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	log := newLogger(a.stderr, cfg.Log)
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
	// Stop the background work (control socket, connections), then wait.
	defer wg.Wait()
	defer cancel()
	conns := []*plugin.Connections{cfg.Connections}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	startConnections(runCtx, &wg, cfg.Connections, log)

	ln, err := control.Listen(control.SocketPath(cfg.StateDir))
	if err != nil {
		log.Error().Err(err).Msg("cannot open the control socket")
		return ExitRuntime
	}
	srv := &control.Server{Engine: engine}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(runCtx, ln); err != nil {
			log.Error().Err(err).Msg("control socket stopped")
		}
	}()

	if err := engine.Reconcile(ctx); err != nil {
		log.Error().Err(err).Msg("reconciling the journal failed")
		return ExitRuntime
	}
	log.Info().Int("policies", len(cfg.Policies)).Str("state_dir", cfg.StateDir).Str("version", version).Msg("rekey started")

	schedCtx, schedCancel := context.WithCancel(runCtx)
	defer schedCancel()
	done := make(chan error, 1)
	go func() { done <- engine.Run(schedCtx) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if next := a.reload(cfgPath, cfg, log); next != nil {
				startConnections(runCtx, &wg, next.Connections, log)
				conns = append(conns, next.Connections)
				engine.SetPolicies(next.Policies)
				cfg = next
			}
		case err := <-done:
			if err != nil {
				log.Error().Err(err).Msg("scheduler stopped")
				return ExitRuntime
			}
			return ExitOK
		case <-ctx.Done():
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
	if next.StateDir != cur.StateDir {
		log.Error().Str("state_dir", next.StateDir).Msg("reload rejected: state_dir cannot change while running; restart the daemon")
		next.Connections.Close()
		return nil
	}
	log.Info().Int("policies", len(next.Policies)).Msg("configuration reloaded")
	return next
}

func startConnections(ctx context.Context, wg *sync.WaitGroup, conns *plugin.Connections, log zerolog.Logger) {
	for _, c := range conns.All() {
		s, ok := c.(plugin.Starter)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error().Err(err).Msg(fmt.Sprintf("connection stopped: %v", err))
			}
		}()
	}
}
