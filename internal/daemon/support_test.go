package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	_ "github.com/rekeyhq/rekey/providers/random"
	_ "github.com/rekeyhq/rekey/sinks/file"
)

// The tests register a connection kind and a probe kind that keep a
// ledger: which connections were started, stopped and closed, and whether
// a probe ever ran on a connection already closed. They stand in for what
// a real server cannot do on demand: hold a rotation at a chosen step.

type ledger struct {
	mu         sync.Mutex
	started    int
	running    int
	closed     int
	checks     int
	violations []string
	// block, when set, makes every probe check wait for release (or for
	// the test's end), ignoring its context like a call that hangs.
	block   bool
	entered chan struct{}
	release chan struct{}
}

var led = &ledger{}

func resetLedger(t *testing.T) {
	led.mu.Lock()
	led.started, led.running, led.closed, led.checks, led.violations, led.block = 0, 0, 0, 0, nil, false
	led.entered, led.release = make(chan struct{}, 100), make(chan struct{})
	rel := led.release
	led.mu.Unlock()
	t.Cleanup(func() {
		led.mu.Lock()
		defer led.mu.Unlock()
		select {
		case <-rel:
		default:
			close(rel)
		}
	})
}

// counts is a snapshot of the ledger.
type counts struct {
	started, running, closed, checks int
	violations                       []string
}

func (l *ledger) get() counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return counts{started: l.started, running: l.running, closed: l.closed, checks: l.checks, violations: append([]string(nil), l.violations...)}
}

func (l *ledger) setBlock(b bool) {
	l.mu.Lock()
	l.block = b
	l.mu.Unlock()
}

func (l *ledger) unblock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.block = false
	select {
	case <-l.release:
	default:
		close(l.release)
	}
}

type testConn struct {
	name   string
	mu     sync.Mutex
	closed bool
}

// Start runs until ctx ends, as a token renewal loop does, logging through
// the logger in its context.
func (c *testConn) Start(ctx context.Context) error {
	led.mu.Lock()
	led.started++
	led.running++
	led.mu.Unlock()
	zerolog.Ctx(ctx).Info().Str("connection", c.name).Msg("daemontest connection renewing")
	<-ctx.Done()
	led.mu.Lock()
	led.running--
	led.mu.Unlock()
	return ctx.Err()
}

func (c *testConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("closed twice")
	}
	c.closed = true
	led.mu.Lock()
	led.closed++
	led.mu.Unlock()
	return nil
}

func (c *testConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

type testProbe struct{ conn *testConn }

func (p *testProbe) Check(ctx context.Context, _ plugin.Key) error {
	zerolog.Ctx(ctx).Info().Msg("daemontest probe checked")
	led.mu.Lock()
	led.checks++
	block, rel, entered := led.block, led.release, led.entered
	led.mu.Unlock()
	if p.conn.isClosed() {
		led.mu.Lock()
		led.violations = append(led.violations, "probe ran on a closed connection")
		led.mu.Unlock()
	}
	if block {
		entered <- struct{}{}
		<-rel
		if p.conn.isClosed() {
			led.mu.Lock()
			led.violations = append(led.violations, "connection closed under a hanging probe")
			led.mu.Unlock()
		}
		return errors.New("daemontest probe hung and gave up")
	}
	return nil
}

func init() {
	plugin.ConnectionKinds.Register("daemontest", func(env *plugin.Env, name string, body hcl.Body) (any, hcl.Diagnostics) {
		var cfg struct{}
		if d := env.Decode(body, &cfg); d.HasErrors() {
			return nil, d
		}
		return &testConn{name: name}, nil
	})
	probes.Register("daemontest", func(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
		var cfg struct {
			Connection hcl.Expression `hcl:"connection"`
		}
		if d := env.Decode(body, &cfg); d.HasErrors() {
			return nil, d
		}
		c, d := env.Connection(cfg.Connection, "daemontest")
		if d.HasErrors() {
			return nil, d
		}
		return &testProbe{conn: c.(*testConn)}, nil
	})
}

// testConfig writes a configuration with one policy (random provider,
// file sink, a daemontest probe on the dependent) and returns its
// directory.
func testConfig(t *testing.T, extraTop string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
state_dir = "state"
%s
daemontest "main" {}

policy "p" {
  every = "1h"
  provider "random" {
    bytes = 16
    field = "v"
  }
  sink "file" {
    path   = "out/secret.json"
    format = "json"
  }
  probe "daemontest" {
    target     = "dependent"
    connection = daemontest.main
    timeout    = "2s"
    interval   = "10ms"
  }
  revoke {
    after = "0s"
    soak  = "0s"
  }
}
`, extraTop)
	if err := os.WriteFile(filepath.Join(dir, "rekey.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadConfig(dir string) (*policies.Config, error) {
	ld := policies.NewLoader()
	cfg, diags := ld.Load(dir)
	if diags.HasErrors() {
		return nil, policies.NewLoadError(ld.Files(), diags)
	}
	return cfg, nil
}

// syncBuffer is a log sink the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a daemon run in this process.
type running struct {
	t    *testing.T
	d    *Daemon
	dir  string
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

func startDaemon(t *testing.T, dir string, opts Options) *running {
	t.Helper()
	cfg, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	opts.Load = func() (*policies.Config, error) { return loadConfig(dir) }
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, d: d, dir: dir, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		led.unblock()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			t.Errorf("the daemon did not stop; logs:\n%s", logs)
		}
	})
	select {
	case <-d.Ready():
	case err := <-r.done:
		t.Fatalf("the daemon stopped at start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon never became ready:\n%s", logs)
	}
	return r
}

// waitFor polls cond for up to 30s (a loaded machine is slow, never
// wrong).
func waitFor(t *testing.T, what string, cond func() bool, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *running) settled() bool {
	st, err := r.d.Engine().Status(context.Background())
	return err == nil && len(st) == 1 && st[0].Generation > 0 && st[0].InFlight == nil
}

func (r *running) logHas(s string) bool { return strings.Contains(r.logs.String(), s) }
