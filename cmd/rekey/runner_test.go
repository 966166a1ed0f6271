package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// ledgerConn is a connection kind registered by this test binary (and so
// by the daemon it spawns) that keeps a ledger in files, across
// processes: a file running-N while its background loop runs, closed-N
// once closed. Its loop logs through the logger in its context.
type ledgerConn struct {
	dir string
	n   int64
}

var ledgerSeq atomic.Int64

func (c *ledgerConn) Start(ctx context.Context) error {
	f := filepath.Join(c.dir, fmt.Sprintf("running-%d-%d", os.Getpid(), c.n))
	_ = os.WriteFile(f, nil, 0o600)
	zerolog.Ctx(ctx).Info().Int64("n", c.n).Msg("rekeytest connection renewing")
	<-ctx.Done()
	_ = os.Remove(f)
	return ctx.Err()
}

func (c *ledgerConn) Close() error {
	return os.WriteFile(filepath.Join(c.dir, fmt.Sprintf("closed-%d-%d", os.Getpid(), c.n)), nil, 0o600)
}

func init() {
	plugin.ConnectionKinds.Register("rekeytest", func(env *plugin.Env, name string, body hcl.Body) (any, hcl.Diagnostics) {
		var cfg struct{}
		if d := env.Decode(body, &cfg); d.HasErrors() {
			return nil, d
		}
		dir := os.Getenv("REKEY_TEST_LEDGER")
		if dir == "" {
			return struct{}{}, nil
		}
		return &ledgerConn{dir: dir, n: ledgerSeq.Add(1)}, nil
	})
}

func countFiles(t *testing.T, dir, prefix string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	return len(m)
}

// TestSIGHUPClosesTheReplacedConnections runs the daemon binary: after
// each SIGHUP exactly one connection set runs and the replaced ones are
// closed (today's daemon kept every set running until exit), and the
// connections' logs reach the daemon's log.
func TestSIGHUPClosesTheReplacedConnections(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), append([]byte("rekeytest \"main\" {}\n"), cfg...), 0o644)
	q.seed()
	ledger := t.TempDir()
	d := q.startDaemon("REKEY_TEST_LEDGER=" + ledger)
	q.waitSettled(d)
	for i := 1; i <= 3; i++ {
		d.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(30 * time.Second)
		for countFiles(t, ledger, "closed-") < i || countFiles(t, ledger, "running-") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("after SIGHUP %d: %d running, %d closed\n%s", i, countFiles(t, ledger, "running-"), countFiles(t, ledger, "closed-"), d.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.Contains(d.logs.String(), "rekeytest connection renewing") {
		t.Errorf("the connection's log did not reach the daemon's log:\n%s", d.logs)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.logs)
	}
	if r, c := countFiles(t, ledger, "running-"), countFiles(t, ledger, "closed-"); r != 0 || c != 4 {
		t.Fatalf("after exit: %d running, %d closed", r, c)
	}
}

// TestLostOrCorruptJournalRefusesToRun: a zero-length journal, a deleted
// one and one with corrupt pages make `rekey run` and `rekey status` exit
// 3 with a message that says what happened and what to do, never a panic.
func TestLostOrCorruptJournalRefusesToRun(t *testing.T) {
	q := newQuickstart(t, "")
	q.seed()
	if out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart"); code != 0 {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	state := q.path("state/rekey")
	journal := filepath.Join(state, rotator.JournalFile)
	good, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	for i := 2 * 4096; i < len(corrupt); i++ {
		corrupt[i] = byte(i*7 + 3)
	}
	damaged := append([]byte(nil), good...)
	for i := 2 * 4096; i < len(damaged); i++ {
		if i%4096 >= 16 {
			damaged[i] = 0xff
		}
	}
	for name, c := range map[string]struct {
		apply func()
		say   string
	}{
		"zero length":   {func() { os.WriteFile(journal, nil, 0o600) }, "empty (zero length)"},
		"deleted":       {func() { os.Remove(journal) }, "is missing, but"},
		"corrupt page":  {func() { os.WriteFile(journal, corrupt, 0o600) }, "corrupt"},
		"damaged pages": {func() { os.WriteFile(journal, damaged, 0o600) }, "journal.db is damaged"},
	} {
		t.Run(name, func(t *testing.T) {
			c.apply()
			defer os.WriteFile(journal, good, 0o600)
			for _, args := range [][]string{{"run", "-config", q.dir}, {"status", "-config", q.dir}} {
				out, code := q.rekey(args...)
				if code != ExitRuntime || !strings.Contains(out, c.say) || !strings.Contains(out, "rekey journal recover") ||
					strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") || strings.Contains(out, "runtime error") {
					t.Errorf("rekey %s with the journal %s: exit %d\n%s", args[0], name, code, out)
				}
			}
			if _, err := os.Stat(journal); name == "deleted" && err == nil {
				t.Error("a start recreated the deleted journal")
			}
		})
	}
}

// TestJournalLostUnderTheDaemon: the journal deleted under a running
// daemon makes `rekey status`, `plan` and `rotate` through its socket exit
// 3 saying that scheduling stopped, what happened, and how to resume,
// instead of showing the last state as if rotations were still scheduled.
func TestJournalLostUnderTheDaemon(t *testing.T) {
	q := newQuickstart(t, "")
	q.seed()
	d := q.startDaemon()
	q.waitSettled(d)
	if err := os.Remove(q.path("state/rekey/" + rotator.JournalFile)); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, "JOURNAL LOST")
	for _, args := range [][]string{{"status"}, {"status", "-json"}, {"plan"}, {"rotate", "quickstart"}} {
		out, code := q.rekey(append(args, "-config", q.dir)...)
		if code != ExitRuntime {
			t.Errorf("rekey %s with the daemon's journal lost: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		for _, want := range []string{"JOURNAL LOST", "stopped scheduling", "was deleted while rekey was running", "journal.db.rescued-", "rekey journal recover", "start the daemon again"} {
			if !strings.Contains(out, want) {
				t.Errorf("rekey %s with the daemon's journal lost does not say %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
		if strings.Contains(out, "NEXT DUE") {
			t.Errorf("rekey %s printed a table:\n%s", strings.Join(args, " "), out)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 20*time.Second); err == nil {
		t.Error("the daemon exited 0 after its journal was lost")
	}
}

// TestRotateWithoutDaemonWritesTheAuditLog: `rekey rotate` without a
// daemon creates, deactivates and deletes keys: it writes the same audit
// log as the daemon.
func TestRotateWithoutDaemonWritesTheAuditLog(t *testing.T) {
	q := newQuickstart(t, "")
	q.seed()
	if out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart"); code != 0 {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	raw, err := os.ReadFile(q.path("state/rekey/" + AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, "the audit log", raw)
	for _, want := range []string{`"step":"create"`, `"step":"commit"`, `"step":"deactivate"`, `"step":"revoke"`, `"step":"done"`, `"manual":true`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the audit log of rekey rotate lacks %s:\n%s", want, raw)
		}
	}
}

// TestSIGTERMDuringSoakLogsNoError: stopping the daemon in the middle of
// a soak is an ordinary stop (the journal keeps the step): nothing is
// logged at error level.
func TestSIGTERMDuringSoakLogsNoError(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	cfg = []byte(strings.Replace(string(cfg), `soak  = "500ms"`, `soak  = "1m"`, 1))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `timeout  = "1s"`, `timeout  = "30s"`, 1)), 0o644)
	q.seed()
	d := q.startDaemon()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := q.status()
		if st[0].InFlight != nil && st[0].InFlight.Step == "soak" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached soak: %+v\n%s", st, d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.logs)
	}
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if strings.Contains(line, `"level":"error"`) {
			t.Errorf("error-level line on SIGTERM during soak: %s", line)
		}
	}
	if st := q.status()[0]; st.InFlight == nil || st.InFlight.Step != "soak" || st.Failures != 0 {
		t.Fatalf("after SIGTERM the journal should hold the soak, with no failure counted: %+v", st)
	}
}

// TestJournalRecover: a journal deleted while a rotation was parked in
// its soak (committed, old key inactive, awaiting revocation) makes run
// refuse; `rekey journal recover` shows what it would adopt and changes
// nothing; with -yes it adopts the new key as current and the old one as
// retired, and the next rotation deletes the retired key to make room
// instead of failing at the provider's key limit (max_keys = 2).
func TestJournalRecover(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	cfg = []byte(strings.Replace(string(cfg), `soak  = "500ms"`, `soak  = "30m"`, 1))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `timeout  = "1s"`, `timeout  = "30s"`, 1)), 0o644)
	old := q.seed()
	if out, code := q.rekey("rotate", "-config", q.dir, "quickstart"); code != 0 || !strings.Contains(out, "committed") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	st := q.status()[0]
	if st.InFlight == nil || st.Generation != 1 {
		t.Fatalf("the rotation should be parked after commit: %+v", st)
	}
	keys := q.keys()
	var newKey string
	for id := range keys {
		if id != old {
			newKey = id
		}
	}
	if len(keys) != 2 || newKey == "" {
		t.Fatalf("keys: %v", keys)
	}
	journal := q.path("state/rekey/" + rotator.JournalFile)
	os.Remove(journal)

	if out, code := q.rekey("rotate", "-config", q.dir, "quickstart"); code != ExitRuntime || !strings.Contains(out, "rekey journal recover") {
		t.Fatalf("rotate with the journal lost: %d\n%s", code, out)
	}
	out, code := q.rekey("journal", "recover", "-config", q.dir)
	if code != 0 || !strings.Contains(out, "adopt "+secretMask(newKey)+" (created") || !strings.Contains(out, "adopt "+secretMask(old)+" as retired") ||
		!strings.Contains(out, "Nothing was changed") {
		t.Fatalf("recover without -yes: %d\n%s", code, out)
	}
	if _, err := os.Stat(journal); err == nil {
		t.Fatal("recover without -yes wrote a journal")
	}
	assertNoCanary(t, "recover output", []byte(out))
	if out, code := q.rekey("journal", "recover", "-yes", "-config", q.dir); code != 0 || !strings.Contains(out, "Wrote a new journal") || !strings.Contains(out, " with 1 policy;") {
		t.Fatalf("recover -yes: %d\n%s", code, out)
	}
	st = q.status()[0]
	if st.Generation != 1 || st.CurrentKey != secretMask(newKey) || st.InFlight != nil {
		t.Fatalf("status after recovery: %+v", st)
	}
	if out, code := q.rekey("rotate", "-config", q.dir, "quickstart"); code != 0 || !strings.Contains(out, "committed") {
		t.Fatalf("rotate after recovery: %d\n%s", code, out)
	}
	keys = q.keys()
	if _, ok := keys[old]; ok || len(keys) != 2 || keys[newKey].status != "inactive" {
		t.Fatalf("after the next rotation the retired key should be gone, and the recovered one retiring: %v", keys)
	}
	if st := q.status()[0]; st.Generation != 2 {
		t.Fatalf("generation after recovery and rotation: %+v", st)
	}
}

func secretMask(id string) string { return secret.Mask(id) }
