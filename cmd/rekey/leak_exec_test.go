package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// leakyCreate makes a real key at the quickstart's key service, prints it
// on stdout as the contract says, echoes it on stderr, and exits 1: a
// create that took effect and then failed (issue 8, second finding).
const leakyCreate = `#!/bin/sh
cd "$(dirname "$0")"
out=$(./keyservice.sh create) || exit 3
printf '%s\n' "$out"
printf 'created, but could not tag the key: %s\n' "$out" >&2
exit 1
`

func newLeakyQuickstart(t *testing.T) *qsEnv {
	t.Helper()
	q := newQuickstart(t, "")
	if err := os.WriteFile(q.path("leaky-create.sh"), []byte(leakyCreate), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := mustRead(t, q.path("rekey.hcl"))
	leaky := strings.Replace(cfg, `create     = ["./keyservice.sh", "create"]`, `create     = ["./leaky-create.sh"]`, 1)
	if leaky == cfg {
		t.Fatal("the quickstart's create command was not found in rekey.hcl")
	}
	if err := os.WriteFile(q.path("rekey.hcl"), []byte(leaky), 0o644); err != nil {
		t.Fatal(err)
	}
	return q
}

// assertLeakedKeyCleanedUp: the key made by the failed create is an orphan
// nobody holds; the rollback removes it and the old key stays served.
func (q *qsEnv) assertLeakedKeyCleanedUp(old string) {
	q.t.Helper()
	keys := q.keys()
	if len(keys) != 1 || keys[old].status != "active" {
		q.t.Fatalf("after the failed create the key service holds %v, want only the old key %s", keys, old)
	}
	if v, _ := q.servedSecret(); v != keys[old].secret {
		q.t.Fatal("the old key is not served after the failed create")
	}
	if b, err := os.ReadFile(q.path("state/keystore/ledger.log")); err != nil || strings.Count(string(b), " create ") < 2 {
		q.t.Fatalf("the leaky create never made a key (ledger: %q, %v): the test tests nothing", b, err)
	}
}

// TestFailedCreateLeaksNoSecret: an exec create prints a valid key on
// stdout, exits 1 and echoes the key on stderr. The key must appear
// nowhere: not in the rotate output, journal.db, status -json, the audit
// log or the daemon's log.
func TestFailedCreateLeaksNoSecret(t *testing.T) {
	t.Run("rotate", func(t *testing.T) {
		q := newLeakyQuickstart(t)
		old := q.seed()
		out, code := q.rekey("rotate", "-config", q.dir, "quickstart")
		if code != ExitRotation || !strings.Contains(out, "exited with status 1") {
			t.Fatalf("rotate: exit %d, want %d and the create's exit status:\n%s", code, ExitRotation, out)
		}
		assertNoCanary(t, "the rotate output", []byte(out))
		st, code := q.rekey("status", "-json", "-config", q.dir)
		if code != 0 {
			t.Fatalf("status: %d %s", code, st)
		}
		assertNoCanary(t, "status -json", []byte(st))
		assertNoCanary(t, "journal.db", []byte(mustRead(t, q.path("state/rekey/"+rotator.JournalFile))))
		audit, err := os.ReadFile(q.path("state/rekey/" + AuditFile))
		if err != nil || !strings.Contains(string(audit), `"failed"`) {
			t.Fatalf("rekey rotate wrote no audit record of the failure: %v\n%s", err, audit)
		}
		assertNoCanary(t, "audit.log", audit)
		q.assertLeakedKeyCleanedUp(old)
	})
	t.Run("daemon", func(t *testing.T) {
		q := newLeakyQuickstart(t)
		old := q.seed()
		d := q.startDaemon()
		st := q.waitSettled(d)
		if st.LastResult == "done" || !strings.Contains(st.LastError, "exited with status 1") {
			t.Fatalf("the daemon's rotation did not fail at create: %+v\n%s", st, d.logs)
		}
		text, _ := q.rekey("status", "-json", "-config", q.dir)
		assertNoCanary(t, "status -json", []byte(text))
		d.cmd.Process.Signal(syscall.SIGTERM)
		if err := d.wait(t, 20*time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, d.logs)
		}
		assertNoCanary(t, "the daemon's log", d.logs.Bytes())
		audit, err := os.ReadFile(q.path("state/rekey/" + AuditFile))
		if err != nil || !strings.Contains(string(audit), `"failed"`) {
			t.Fatalf("audit log: %v\n%s", err, audit)
		}
		assertNoCanary(t, "audit.log", audit)
		assertNoCanary(t, "journal.db", []byte(mustRead(t, filepath.Join(q.dir, "state/rekey", rotator.JournalFile))))
		q.assertLeakedKeyCleanedUp(old)
	})
}
