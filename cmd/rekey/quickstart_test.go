package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// canary starts every secret the test key service issues.
const canary = "CANARYqs7f3e1d"

// qsEnv is a copy of the quickstart in a temporary directory, configured for
// tests: the schedule is slow (rotations happen when the test says), the
// revoke rules are short, and every secret carries the canary prefix.
type qsEnv struct {
	t   *testing.T
	dir string
}

func newQuickstart(t *testing.T, extraPolicy string) *qsEnv {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"keyservice.sh", "dependent.sh", "probe-new-key.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A gate the dependent probe consults: while state/app/broken exists and
	// the sink serves anything but the value saved in it (see breakNewKey),
	// the application "fails", which forces a rollback; with the saved
	// value restored it works again, which the rollback must see before it
	// deletes the new key.
	gate := "#!/bin/sh\nset -eu\ncd \"$(dirname \"$0\")\"\nif [ -e state/app/broken ] && ! cmp -s state/app/broken state/app/credentials.env; then echo broken >&2; exit 1; fi\nexec ./dependent.sh check\n"
	if err := os.WriteFile(filepath.Join(dir, "dependent-gate.sh"), []byte(gate), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
state_dir = "state/rekey"
log {
  level  = "debug"
  format = "json"
}
policy "quickstart" {
  every = "1h"
  provider "exec" {
    create     = ["./keyservice.sh", "create"]
    list       = ["./keyservice.sh", "list"]
    delete     = ["./keyservice.sh", "delete"]
    deactivate = ["./keyservice.sh", "deactivate"]
    activate   = ["./keyservice.sh", "activate"]
    max_keys   = 2
    env        = { QS_SECRET_PREFIX = "%s" }
  }
  sink "file" {
    path   = "state/app/credentials.env"
    format = "env"
    fields = { API_KEY = "api_key" }
  }
  probe "exec" {
    target   = "key"
    command  = ["./probe-new-key.sh"]
    pass_key = true
    timeout  = "10s"
    interval = "100ms"
  }
  reload "exec" {
    command = ["./dependent.sh", "reload"]
  }
  probe "exec" {
    target   = "dependent"
    command  = ["./dependent-gate.sh"]
    timeout  = "1s"
    interval = "100ms"
  }
  revoke {
    after = "0s"
    soak  = "500ms"
  }
  %s
}
`, canary, extraPolicy)
	if err := os.WriteFile(filepath.Join(dir, "rekey.hcl"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &qsEnv{t: t, dir: dir}
}

// breakNewKey makes the application fail with any value but the one the
// sink serves now: a new key is rejected, the restored old key works.
func (q *qsEnv) breakNewKey() {
	q.t.Helper()
	b, err := os.ReadFile(q.path("state/app/credentials.env"))
	if err != nil {
		q.t.Fatal(err)
	}
	if err := os.WriteFile(q.path("state/app/broken"), b, 0o600); err != nil {
		q.t.Fatal(err)
	}
}

// seed creates a key at the key service and serves it to the application,
// as an operator would have before installing rekey.
func (q *qsEnv) seed() string {
	q.t.Helper()
	cmd := exec.Command(filepath.Join(q.dir, "keyservice.sh"), "create")
	cmd.Env = append(os.Environ(), "REKEY_ROTATION_ID=seed", "QS_SECRET_PREFIX="+canary)
	out, err := cmd.Output()
	if err != nil {
		q.t.Fatal(err)
	}
	var k struct {
		ID    string
		Value map[string]string
	}
	if err := json.Unmarshal(out, &k); err != nil {
		q.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q.dir, "state/app/credentials.env"), []byte("API_KEY='"+k.Value["api_key"]+"'\n"), 0o600); err != nil {
		q.t.Fatal(err)
	}
	// The key is old: the daemon's first look finds it due.
	kf := filepath.Join(q.dir, "state/keystore", k.ID+".key")
	b, err := os.ReadFile(kf)
	if err != nil {
		q.t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^created=.*$`).ReplaceAll(b, []byte("created=2020-01-01T00:00:00Z"))
	if err := os.WriteFile(kf, b, 0o600); err != nil {
		q.t.Fatal(err)
	}
	return k.ID
}

func (q *qsEnv) path(p string) string { return filepath.Join(q.dir, p) }

// dependentTimeout gives the dependent probe more than its 1 s, for a test
// whose dependent must not fail on a slow machine.
func (q *qsEnv) dependentTimeout(d string) {
	q.t.Helper()
	cfg, err := os.ReadFile(q.path("rekey.hcl"))
	if err != nil {
		q.t.Fatal(err)
	}
	const probe = "command  = [\"./dependent-gate.sh\"]\n    timeout  = \"1s\""
	if !strings.Contains(string(cfg), probe) {
		q.t.Fatal("the test quickstart's dependent probe changed; update dependentTimeout")
	}
	if err := os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), probe, strings.Replace(probe, "1s", d, 1), 1)), 0o644); err != nil {
		q.t.Fatal(err)
	}
}

// command returns the rekey command (this test binary acting as main).
func (q *qsEnv) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "REKEY_TEST_BE_MAIN=1"), env...)
	return cmd
}

// rekey runs a CLI command to completion.
func (q *qsEnv) rekey(args ...string) (string, int) {
	q.t.Helper()
	cmd := q.command(nil, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		q.t.Fatal(err)
	}
	return out.String(), code
}

type daemon struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

// lockedBuffer collects a child's output, written by exec's copying
// goroutine while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Bytes() []byte { return []byte(l.String()) }

func (q *qsEnv) startDaemon(env ...string) *daemon {
	q.t.Helper()
	d := &daemon{cmd: q.command(env, "run", "-config", q.dir), logs: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		q.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	q.t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
	})
	return d
}

func (d *daemon) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-d.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("daemon did not exit within %s; logs:\n%s", timeout, d.logs)
		return nil
	}
}

func (q *qsEnv) status() []rotator.PolicyStatus {
	q.t.Helper()
	out, code := q.rekey("status", "-json", "-config", q.dir)
	if code != 0 {
		q.t.Fatalf("status exited %d: %s", code, out)
	}
	var st []rotator.PolicyStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		q.t.Fatalf("status output: %v\n%s", err, out)
	}
	return st
}

// waitSettled polls status until no rotation is in flight.
func (q *qsEnv) waitSettled(d *daemon) rotator.PolicyStatus {
	q.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := q.status()
		if len(st) == 1 && st[0].InFlight == nil && st[0].Generation > 0 {
			return st[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	q.t.Fatalf("a rotation is still in flight after 30s; daemon logs:\n%s", d.logs)
	return rotator.PolicyStatus{}
}

type storedKey struct{ id, secret, status string }

func (q *qsEnv) keys() map[string]storedKey {
	out := map[string]storedKey{}
	files, _ := filepath.Glob(q.path("state/keystore/*.key"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // deleted between glob and read
		}
		k := storedKey{id: strings.TrimSuffix(filepath.Base(f), ".key")}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "secret="); ok {
				k.secret = v
			}
			if v, ok := strings.CutPrefix(line, "status="); ok {
				k.status = v
			}
		}
		out[k.id] = k
	}
	return out
}

var served = regexp.MustCompile(`(?m)^API_KEY=["']([^"']*)["']$`)

// servedSecret returns the key the application reads; ok is false when
// the file does not exist yet. Content the application could not parse is
// reported as a value that no key matches.
func (q *qsEnv) servedSecret() (string, bool) {
	b, err := os.ReadFile(q.path("state/app/credentials.env"))
	if err != nil {
		return "", false
	}
	m := served.FindSubmatch(b)
	if m == nil {
		return "<unparseable credentials.env>", true
	}
	return string(m[1]), true
}

// watch checks, every few milliseconds until stopped, the promise of
// rotation-protocol.md: the value the sink serves is a key the provider
// accepts (present and active), and the provider never holds more than 2
// keys.
func (q *qsEnv) watch() (stop func() []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var violations []string
	checks := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			v1, ok := q.servedSecret()
			keys := q.keys()
			v2, _ := q.servedSecret()
			if ok && v1 == v2 {
				checks++
				accepted := false
				for _, k := range keys {
					accepted = accepted || (k.secret == v1 && k.status == "active")
				}
				if !accepted {
					violations = append(violations, fmt.Sprintf("%s: the application's key is not accepted by the key service (keys: %d)", time.Now().Format(time.RFC3339Nano), len(keys)))
				}
			}
			if len(keys) > 2 {
				violations = append(violations, fmt.Sprintf("%d keys at the key service, limit 2", len(keys)))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() []string {
		cancel()
		wg.Wait()
		if checks == 0 {
			violations = append(violations, "the watcher never saw a key served: it checked nothing")
		}
		return violations
	}
}

// assertSettledState checks the end state: exactly one key at the provider,
// the one the journal calls current, served by the sink.
func (q *qsEnv) assertSettledState(st rotator.PolicyStatus) {
	q.t.Helper()
	keys := q.keys()
	if len(keys) != 1 {
		q.t.Fatalf("the key service holds %d keys after settling, want 1 (no orphan, old key revoked): %v", len(keys), keys)
	}
	for _, k := range keys {
		if st.CurrentKey == "" || !strings.HasSuffix(k.id, st.CurrentKey[len(st.CurrentKey)-4:]) {
			q.t.Fatalf("journal's current key %s is not the key service's %s", st.CurrentKey, k.id)
		}
		if v, _ := q.servedSecret(); v != k.secret {
			q.t.Fatal("the sink does not serve the current key")
		}
	}
}

// assertNoCanary checks that no secret issued in the test appears in text
// that must never hold one.
func assertNoCanary(t *testing.T, what string, b []byte) {
	t.Helper()
	if bytes.Contains(b, []byte(canary)) {
		i := bytes.Index(b, []byte(canary))
		t.Errorf("a secret value leaked into %s: ...%s...", what, b[max(0, i-80):min(len(b), i+40)])
	}
}

// TestCrashMatrix kills the daemon with SIGKILL at every failpoint, restarts
// it, and checks the invariants of rotation-protocol.md against the real
// key service and file sink: the application always holds a working key;
// no key at the provider unknown to the journal; never more keys than the
// provider allows; the old key revoked only after commit; each rotation
// resumed or rolled back, never left half-way.
func TestCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix runs the daemon ~40 times")
	}
	type row struct{ fp, first, after string }
	var rows []row
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			q := newQuickstart(t, "")
			old := q.seed()
			if strings.HasPrefix(fp, "rollback.") {
				q.breakNewKey()
			}
			stop := q.watch()
			d := q.startDaemon(rotator.FailpointEnv + "=" + fp + "=kill")
			err := d.wait(t, 30*time.Second)
			ws, ok := err.(*exec.ExitError)
			if !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("daemon was not killed at %s (exit %v); logs:\n%s", fp, err, d.logs)
			}
			os.Remove(q.path("state/app/broken"))

			d2 := q.startDaemon()
			st := q.waitSettled(d2)
			first := st.LastResult
			out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart")
			if code != 0 || !strings.Contains(out, "quickstart: done") {
				t.Fatalf("rotate after recovery exited %d:\n%s\ndaemon logs:\n%s", code, out, d2.logs)
			}
			st = q.waitSettled(d2)
			_ = d2.cmd.Process.Signal(syscall.SIGTERM)
			if err := d2.wait(t, 20*time.Second); err != nil {
				t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, d2.logs)
			}
			for _, v := range stop() {
				t.Error(v)
			}
			q.assertSettledState(st)
			if _, ok := q.keys()[old]; ok {
				t.Fatal("the seeded key was never revoked")
			}
			journal, _ := os.ReadFile(q.path("state/rekey/journal.db"))
			assertNoCanary(t, "the journal", journal)
			assertNoCanary(t, "the daemon's logs", append(d.logs.Bytes(), d2.logs.Bytes()...))
			assertNoCanary(t, "rotate output", []byte(out))
			rows = append(rows, row{fp, first, st.LastResult})
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s %-14s %s\n", "failpoint", "after restart", "then")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-18s %-14s %s\n", r.fp, r.first, r.after)
	}
	t.Logf("crash matrix:\n%s", b.String())
	if p := os.Getenv("REKEY_CRASH_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(b.String()), 0o644)
	}
}

// TestDaemonRotatesAndStatusShowsIt runs the quickstart daemon, rotates on
// demand through the control socket, checks status, SIGHUP with an invalid
// and a valid configuration, and SIGTERM.
func TestDaemonRotatesAndStatusShowsIt(t *testing.T) {
	q := newQuickstart(t, "")
	q.seed()
	stop := q.watch()
	d := q.startDaemon()
	st := q.waitSettled(d)
	if st.LastResult != "done" || st.Generation != 1 {
		t.Fatalf("first rotation: %+v\n%s", st, d.logs)
	}
	out, code := q.rekey("rotate", "-config", q.dir, "quickstart")
	if code != 0 || !strings.Contains(out, "commit") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	st = q.waitSettled(d)
	if st.Generation != 2 || st.LastResult != "done" {
		t.Fatalf("status after rotate: %+v", st)
	}
	if fi, err := os.Stat(q.path("state/rekey/rekey.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi, err)
	}
	text, _ := q.rekey("status", "-config", q.dir)
	if !strings.Contains(text, "quickstart") || !strings.Contains(text, st.CurrentKey) || !strings.Contains(text, "done") {
		t.Fatalf("status text:\n%s", text)
	}

	// An invalid configuration is rejected as a whole on SIGHUP.
	good, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(good), `every = "1h"`, `every = "1h"`+"\n  evry = 3", 1)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, "reload rejected")
	os.WriteFile(q.path("rekey.hcl"), good, 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, d, "configuration reloaded")

	out, code = q.rekey("rotate", "-config", q.dir, "nosuch")
	if code != ExitConfig {
		t.Fatalf("rotate of an unknown policy exited %d: %s", code, out)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(q.status()[0])
	assertNoCanary(t, "the daemon's logs", d.logs.Bytes())
	assertNoCanary(t, "status output", []byte(text))
}

func waitLog(t *testing.T, d *daemon, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.logs.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("daemon never logged %q:\n%s", s, d.logs)
}

// TestFailedRotationExitsTwoAndRollsBack: a dependent that fails makes
// `rekey rotate` roll back and exit 2, the old key still served.
func TestFailedRotationExitsTwoAndRollsBack(t *testing.T) {
	q := newQuickstart(t, "")
	old := q.seed()
	q.breakNewKey()
	stop := q.watch()
	out, code := q.rekey("rotate", "-config", q.dir, "quickstart")
	if code != ExitRotation || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	for _, v := range stop() {
		t.Error(v)
	}
	keys := q.keys()
	if len(keys) != 1 || keys[old].status != "active" {
		t.Fatalf("after rollback: %v", keys)
	}
	if v, _ := q.servedSecret(); v != keys[old].secret {
		t.Fatal("the old key is not served after rollback")
	}
	assertNoCanary(t, "rotate output", []byte(out))
	// The error is printed once (issue 10 §6), and the columns hold.
	if n := strings.Count(out, "did not pass within"); n != 1 {
		t.Errorf("the probe's error is printed %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "rolled_back rolled_back") || strings.Contains(out, "rolled_back  rolled_back") {
		t.Errorf("the step and result columns repeat rolled_back:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if step := regexp.MustCompile(`^\d\d:\d\d:\d\d  quickstart  (\S+)`).FindStringSubmatch(line); step == nil && !strings.HasPrefix(line, "quickstart: ") {
			t.Errorf("a line outside the columns: %q", line)
		}
	}
}

// TestInterruptAfterCommit: Ctrl-C on rotate -wait after the commit says
// the rotation is committed and who finishes it, and exits 0; with and
// without a daemon.
func TestInterruptAfterCommit(t *testing.T) {
	for _, withDaemon := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "daemon"}[withDaemon], func(t *testing.T) {
			q := newQuickstart(t, "")
			cfg, _ := os.ReadFile(q.path("rekey.hcl"))
			os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `after = "0s"`, `after = "30m"`, 1)), 0o644)
			finisher := "the next `rekey run`"
			if !withDaemon {
				q.seed()
			} else {
				d := q.startDaemon()
				q.waitSettled(d)
				finisher = "the daemon finishes"
			}
			out, interrupt := startRotateWait(t, q)
			committed := regexp.MustCompile(`(?m)^\S+  quickstart  commit +ok`)
			deadline := time.Now().Add(time.Minute)
			for !committed.MatchString(out.String()) {
				if time.Now().After(deadline) {
					t.Fatalf("no commit within a minute:\n%s", out)
				}
				time.Sleep(20 * time.Millisecond)
			}
			err := interrupt()
			if err != nil {
				t.Fatalf("rotate -wait interrupted after commit: %v, want exit 0:\n%s", err, out)
			}
			if !strings.Contains(out.String(), "quickstart: interrupted after the commit: the rotation is committed") || !strings.Contains(out.String(), finisher) {
				t.Fatalf("rotate -wait interrupted after commit does not say it is committed and who finishes it (%s):\n%s", finisher, out)
			}
			if strings.Contains(out.String(), "signal received") {
				t.Errorf("the interrupt is reported as an error:\n%s", out)
			}
			st := q.status()
			if len(st) != 1 || st[0].InFlight == nil || st[0].InFlight.CommittedAt.IsZero() {
				t.Fatalf("after the interrupt the rotation should be committed and in flight: %+v", st)
			}
		})
	}
}

// TestInterruptJoinedAfterCommit: Ctrl-C on a rotate -wait that joined a
// rotation already past its commit says it is committed, and exits 0: the
// answer comes from the journal, not from the steps this rotate saw.
func TestInterruptJoinedAfterCommit(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `after = "0s"`, `after = "30m"`, 1)), 0o644)
	q.seed()
	if out, code := q.rekey("rotate", "-config", q.dir, "quickstart"); code != ExitOK || !strings.Contains(out, "quickstart: committed") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	out, interrupt := startRotateWait(t, q)
	// rotate -wait holds the state directory while it waits; status says
	// who may hold it.
	deadline := time.Now().Add(time.Minute)
	for {
		st, code := q.rekey("status", "-config", q.dir)
		if code != ExitOK && strings.Contains(st, "locked") {
			if !strings.Contains(st, "rekey rotate") {
				t.Errorf("the lock error does not name a daemonless rekey rotate:\n%s", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotate -wait did not take the state directory within a minute:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := interrupt()
	if err != nil || !strings.Contains(out.String(), "quickstart: interrupted after the commit: the rotation is committed") || strings.Contains(out.String(), "nothing changed") || strings.Contains(out.String(), "rolled back") {
		t.Fatalf("joined rotate -wait interrupted after commit: %v, want exit 0 and the committed message:\n%s", err, out)
	}
	st := q.status()
	if len(st) != 1 || st[0].InFlight == nil || st[0].InFlight.CommittedAt.IsZero() {
		t.Fatalf("after the interrupt the rotation should be committed and in flight: %+v", st)
	}
}

// TestRotateWaitReturnsWhenDeactivateFails: a deactivate that keeps
// failing ends rotate -wait after one attempt: committed, exit 0, and the
// pending steps printed.
func TestRotateWaitReturnsWhenDeactivateFails(t *testing.T) {
	q := newQuickstart(t, `step_timeout = "1s"`)
	ks, _ := os.ReadFile(q.path("keyservice.sh"))
	os.WriteFile(q.path("keyservice.sh"), []byte(strings.Replace(string(ks), "deactivate | activate)\n", "deactivate | activate)\n\t[ \"$1\" = deactivate ] && { echo \"deactivate refused\" >&2; exit 1; }\n", 1)), 0o755)
	old := q.seed()
	out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart")
	if code != ExitOK || !strings.Contains(out, "quickstart: committed") || !strings.Contains(out, "pending: deactivate, soak, revoke") {
		t.Fatalf("rotate -wait with a failing deactivate: %d\n%s", code, out)
	}
	if n := len(regexp.MustCompile(`(?m)^\S+  quickstart  deactivate +failed`).FindAllString(out, -1)); n != 1 {
		t.Errorf("rotate -wait made %d failed deactivate attempts, want 1:\n%s", n, out)
	}
	if keys := q.keys(); keys[old].status != "active" {
		t.Fatalf("the old key was touched: %v", keys)
	}
}

// TestStatusNamesTheReleaseCommand: a stuck policy's status line ends with
// the command that releases it, with the configuration path (issue 10 §11).
func TestStatusNamesTheReleaseCommand(t *testing.T) {
	q := newQuickstart(t, "max_failures = 1")
	q.seed()
	os.WriteFile(q.path("state/app/broken"), nil, 0o600)
	if out, code := q.rekey("rotate", "-config", q.dir, "quickstart"); code != ExitRotation {
		t.Fatalf("rotate with a broken dependent: %d\n%s", code, out)
	}
	out, code := q.rekey("status", "-config", q.dir)
	if code != ExitOK || !strings.Contains(out, "STUCK") || !strings.Contains(out, "quickstart is stuck: fix the cause, then release it with: rekey rotate -config "+q.dir+" quickstart") {
		t.Fatalf("status of a stuck policy: %d\n%s", code, out)
	}
	// The engine's own messages name the configuration too.
	want := "then run: rekey rotate -config " + q.dir + " quickstart"
	for _, args := range [][]string{{"plan", "-config", q.dir}, {"status", "-json", "-config", q.dir}} {
		out, _ := q.rekey(args...)
		if !strings.Contains(out, want) || strings.Contains(out, "then run: rekey rotate quickstart") {
			t.Errorf("rekey %s does not say %q:\n%s", strings.Join(args, " "), want, out)
		}
	}
}

// startRotateWait starts `rekey rotate -wait quickstart` in the background;
// interrupt sends it SIGINT and returns how it exited.
func startRotateWait(t *testing.T, q *qsEnv) (out *lockedBuffer, interrupt func() error) {
	t.Helper()
	cmd := q.command(nil, "rotate", "-wait", "-config", q.dir, "quickstart")
	out = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return out, func() error {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("rotate -wait did not exit after SIGINT:\n%s", out)
			return nil
		}
	}
}

// TestRotateReportsADaemonThatDied: the daemon is killed while `rekey
// rotate` follows its rotation through the socket. rotate says the
// connection broke off and where the rotation stands (from the journal,
// read once the daemon is gone), exits 3, and never prints done; the next
// start rolls the rotation back.
func TestRotateReportsADaemonThatDied(t *testing.T) {
	q := newQuickstart(t, "")
	q.dependentTimeout("60s")
	gate, _ := os.ReadFile(q.path("dependent-gate.sh"))
	os.WriteFile(q.path("dependent-gate.sh"), []byte(strings.Replace(string(gate), "set -eu\n", "set -eu\nwhile [ -e \"$(dirname \"$0\")/state/app/hold\" ]; do sleep 0.05; done\n", 1)), 0o755)
	q.seed()
	d := q.startDaemon()
	before := q.waitSettled(d)
	os.WriteFile(q.path("state/app/hold"), nil, 0o600)
	cmd := q.command(nil, "rotate", "-config", q.dir, "quickstart")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(time.Minute); !regexp.MustCompile(`quickstart  reload +ok`).MatchString(out.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the rotation never reached verify:\n%s", out)
		}
	}
	d.cmd.Process.Kill()
	d.wait(t, 20*time.Second)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitRuntime {
		t.Errorf("rotate exited %v, want %d", err, ExitRuntime)
	}
	for _, want := range []string{"the daemon closed the connection before the rotation ended", "quickstart: interrupted before the commit", "the daemon's next start rolls the rotation back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rotate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "quickstart: done") {
		t.Errorf("rotate says done:\n%s", out)
	}
	os.Remove(q.path("state/app/hold"))
	d = q.startDaemon()
	if st := q.waitSettled(d); st.LastResult != "rolled_back" || st.CurrentKey != before.CurrentKey {
		t.Errorf("after restart: %+v, want rolled back to %s", st, before.CurrentKey)
	}
}
