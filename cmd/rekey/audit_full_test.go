package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// auditLimit is the file size limit (RLIMIT_FSIZE, set with the shell's
// `ulimit -f` in 512-byte blocks) the children in these tests run under:
// once audit.log reaches it, the kernel writes part of a line and fails
// the rest, as a full disk does.
const auditLimitBlocks = 512
const auditLimit = auditLimitBlocks * 512

// limited returns the rekey command run under the file size limit.
func (q *qsEnv) limited(args ...string) *exec.Cmd {
	sh := fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, auditLimitBlocks)
	cmd := exec.Command("/bin/sh", append([]string{"-c", sh, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), "REKEY_TEST_BE_MAIN=1")
	return cmd
}

// openJournal creates the journal (a first start), so that a filled
// audit log is not taken as evidence of a lost journal.
func (q *qsEnv) openJournal() {
	q.t.Helper()
	j, err := rotator.OpenBoltJournal(q.path("state/rekey"))
	if err != nil {
		q.t.Fatal(err)
	}
	j.Close()
}

// fillAudit appends whole filler lines to audit.log until it is leave
// bytes short of the limit.
func (q *qsEnv) fillAudit(leave int) {
	q.t.Helper()
	path := q.path("state/rekey/" + AuditFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		q.t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	n := auditLimit - leave - int(fi.Size())
	if n < 200 {
		q.t.Fatalf("audit.log is already %d bytes", fi.Size())
	}
	head := `{"v":1,"policy":"filler","rotation_id":"filler","step":"create","result":"ok","error":"`
	tail := "\"}\n"
	if _, err := f.WriteString(head + strings.Repeat("x", n-len(head)-len(tail)) + tail); err != nil {
		q.t.Fatal(err)
	}
}

// assertWholeAuditLines fails unless every line of audit.log is a JSON
// object and the file ends with a newline; it returns the lines.
func (q *qsEnv) assertWholeAuditLines() []map[string]any {
	q.t.Helper()
	raw, err := os.ReadFile(q.path("state/rekey/" + AuditFile))
	if err != nil {
		q.t.Fatal(err)
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		q.t.Fatalf("audit.log ends in a torn line: %q", raw[max(0, len(raw)-100):])
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			q.t.Fatalf("torn audit line: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// TestAuditFullDiskStopsRotateBeforeCommit: `rekey rotate` (no daemon)
// with the audit log about to hit the limit: the rotation stops before
// commit, no line is torn, the old key is untouched and still served.
func TestAuditFullDiskStopsRotateBeforeCommit(t *testing.T) {
	q := newQuickstart(t, "")
	old := q.seed()
	q.openJournal()
	q.fillAudit(700)
	cmd := q.limited("rotate", "-wait", "-config", q.dir, "quickstart")
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "quickstart: done") {
		t.Fatalf("rotate succeeded with the audit log full:\n%s", out)
	}
	lines := q.assertWholeAuditLines()
	for _, l := range lines {
		if l["policy"] == "quickstart" && (l["step"] == "commit" || l["step"] == "revoke" || l["step"] == "deactivate") {
			t.Fatalf("an irreversible step was recorded although the audit log failed before it: %v", l)
		}
	}
	keys := q.keys()
	if k, ok := keys[old]; !ok || k.status != "active" {
		t.Fatalf("the old key after a failed audit write: %v\n%s", keys, out)
	}
	served, _ := q.servedSecret()
	if served != keys[old].secret {
		t.Fatalf("the sink does not serve the old key after the rotation stopped")
	}
	if !strings.Contains(string(out), "audit log write failed") || !strings.Contains(string(out), "file too large") {
		t.Errorf("the output does not say the audit log failed:\n%s", out)
	}
}

// TestAuditFullDiskStopsDaemonBeforeCommit: the daemon starts with the
// audit log about to hit the limit. Its rotation stops before commit and
// rolls back; no line is torn; the old key stays active and served; once
// space is free, a restarted daemon rotates.
func TestAuditFullDiskStopsDaemonBeforeCommit(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `timeout  = "1s"`, `timeout  = "30s"`, 1)), 0o644)
	old := q.seed()
	q.openJournal()
	q.fillAudit(700)
	d := &daemon{cmd: q.limited("run", "-config", q.dir), logs: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	st := q.waitSettled(d)
	if st.LastResult == "done" || st.CurrentKey != "" && st.Generation > 1 {
		t.Fatalf("the rotation finished although the audit log was full: %+v\n%s", st, d.logs)
	}
	if !strings.Contains(d.logs.String(), "audit log write failed") {
		t.Fatalf("the daemon did not say the audit log failed:\n%s", d.logs)
	}
	for _, l := range q.assertWholeAuditLines() {
		if l["policy"] == "quickstart" && (l["step"] == "commit" || l["step"] == "revoke" || l["step"] == "deactivate") {
			t.Fatalf("an irreversible step after the audit log failed: %v", l)
		}
	}
	keys := q.keys()
	if k, ok := keys[old]; !ok || k.status != "active" {
		t.Fatalf("the old key after a failed audit write: %v", keys)
	}
	if served, _ := q.servedSecret(); served != keys[old].secret {
		t.Fatal("the sink does not serve the old key after the rotation stopped")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 30*time.Second); err != nil {
		t.Logf("exit: %v", err)
	}

	path := q.path("state/rekey/" + AuditFile)
	raw, _ := os.ReadFile(path)
	var kept []byte
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"policy":"filler"`)) {
			kept = append(kept, line...)
		}
	}
	os.WriteFile(path, kept, 0o600)
	out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart")
	if code != 0 || !strings.Contains(out, "quickstart: done") {
		t.Fatalf("rotate once space was freed: %d\n%s", code, out)
	}
	if _, ok := q.keys()[old]; ok {
		t.Fatal("the old key was not revoked once the audit log worked again")
	}
	revoked := false
	for _, l := range q.assertWholeAuditLines() {
		revoked = revoked || l["policy"] == "quickstart" && l["step"] == "revoke"
	}
	if !revoked {
		t.Fatal("no revoke in the audit log")
	}
}
