package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// slowRevoke makes the quickstart's revoke rules slow (an hour of grace
// and of soak), so that a compromised rotation that finishes at once
// proves it skipped them.
func (q *qsEnv) slowRevoke() {
	q.t.Helper()
	b, err := os.ReadFile(q.path("rekey.hcl"))
	if err != nil {
		q.t.Fatal(err)
	}
	s := strings.Replace(string(b), `after = "0s"`, `after = "1h"`, 1)
	s = strings.Replace(s, `soak  = "500ms"`, `soak  = "1h"`, 1)
	if s == string(b) {
		q.t.Fatal("the quickstart's revoke block changed: update slowRevoke")
	}
	if err := os.WriteFile(q.path("rekey.hcl"), []byte(s), 0o644); err != nil {
		q.t.Fatal(err)
	}
}

type auditLine struct {
	Time      time.Time         `json:"time"`
	Policy    string            `json:"policy"`
	Step      string            `json:"step"`
	Result    string            `json:"result"`
	NewKeyID  string            `json:"new_key_id"`
	OldKeyID  string            `json:"old_key_id"`
	Error     string            `json:"error"`
	Reason    string            `json:"reason"`
	Note      string            `json:"note"`
	Manual    bool              `json:"manual"`
	Labels    map[string]string `json:"labels"`
	ExpiresAt time.Time         `json:"expires_at"`
}

func (q *qsEnv) audit() ([]auditLine, []byte) {
	q.t.Helper()
	b, err := os.ReadFile(q.path("state/rekey/audit.log"))
	if err != nil {
		q.t.Fatal(err)
	}
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			q.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out, b
}

func findAudit(lines []auditLine, step, result string) (auditLine, bool) {
	for _, l := range lines {
		if l.Step == step && l.Result == result {
			return l, true
		}
	}
	return auditLine{}, false
}

// TestCompromisedRotation: rekey rotate -compromised rotates at once and
// revokes the old key within seconds of the dependents passing, although
// the policy asks for an hour of grace and an hour of soak; the quickstart
// dependent is served an accepted key throughout; the summary table names
// the new key and when the old one was revoked; every audit record of the
// rotation carries the reason compromised and the operator's note.
func TestCompromisedRotation(t *testing.T) {
	q := newQuickstart(t, `labels = { env = "dev" }`)
	q.slowRevoke()
	old := q.seed()
	stop := q.watch()
	out, code := q.rekey("rotate", "-config", q.dir, "-compromised", "-reason", "key pasted in a CI log", "quickstart")
	for _, v := range stop() {
		t.Error(v)
	}
	t.Logf("rekey rotate -compromised:\n%s", out)
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	keys := q.keys()
	if _, ok := keys[old]; ok || len(keys) != 1 {
		t.Fatalf("the compromised key is still at the key service: %v", keys)
	}
	if !strings.Contains(out, "OLD KEY REVOKED AT / WHY NOT") || strings.Contains(out, "STILL LIVE") {
		t.Fatalf("no summary table, or a key still live:\n%s", out)
	}
	lines, raw := q.audit()
	assertNoCanary(t, "audit log", raw)
	assertNoCanary(t, "rotate output", []byte(out))
	verified, ok1 := findAudit(lines, "verify", "ok")
	revoked, ok2 := findAudit(lines, "revoke", "ok")
	if !ok1 || !ok2 {
		t.Fatalf("audit log lacks verify ok or revoke ok:\n%s", raw)
	}
	if verified.Time.IsZero() || revoked.Time.IsZero() {
		t.Fatalf("audit records without a time: verify %+v, revoke %+v", verified, revoked)
	}
	// The policy asks for an hour of grace and an hour of soak; the
	// bound is loose for a loaded machine and still 240 times shorter.
	if d := revoked.Time.Sub(verified.Time); d < 0 || d > 15*time.Second {
		t.Errorf("the old key was revoked %s after verify, want within seconds (the policy's grace is 1h)", d)
	}
	for _, l := range lines {
		if l.Reason != "compromised" || l.Note != "key pasted in a CI log" || !l.Manual || l.Labels["env"] != "dev" {
			t.Errorf("audit record without the compromise reason, note or labels: %+v", l)
		}
	}
	for _, step := range []string{"drain", "deactivate", "soak"} {
		for _, l := range lines {
			if l.Step == step {
				t.Errorf("a compromised rotation went through %s: %+v", step, l)
			}
		}
	}
	if !strings.Contains(out, revoked.OldKeyID) {
		t.Errorf("the summary does not name the old key %s", revoked.OldKeyID)
	}
}

// TestCompromisedRotationNeverRevokesUnverified: when the dependent fails
// with the new key, the compromised rotation rolls back, the old key stays
// (it is still needed), the summary says it is still live and why, and
// the exit code is not zero.
func TestCompromisedRotationNeverRevokesUnverified(t *testing.T) {
	q := newQuickstart(t, "")
	old := q.seed()
	q.breakNewKey()
	out, code := q.rekey("rotate", "-config", q.dir, "-compromised", "-reason", "leak", "quickstart")
	t.Logf("rekey rotate -compromised (dependent fails):\n%s", out)
	if code != ExitRotation {
		t.Fatalf("exit %d, want %d", code, ExitRotation)
	}
	if k, ok := q.keys()[old]; !ok || k.status != "active" {
		t.Fatalf("the old key was touched although the dependents never passed: %v", q.keys())
	}
	if !strings.Contains(out, "STILL LIVE") || !strings.Contains(out, "rolled back") {
		t.Fatalf("the summary does not report the live key and why:\n%s", out)
	}
	if v, _ := q.servedSecret(); v != q.keys()[old].secret {
		t.Fatal("the old key is not served after the rollback")
	}
}

// TestCompromisedForceRevoke: -force-revoke needs its confirmation; with
// it, the old key is revoked although the dependent fails with the new
// key, and the summary and the audit log say it was forced.
func TestCompromisedForceRevoke(t *testing.T) {
	q := newQuickstart(t, "")
	old := q.seed()
	q.breakNewKey()
	out, code := q.rekey("rotate", "-config", q.dir, "-compromised", "-force-revoke", "quickstart")
	if code != ExitConfig || !strings.Contains(out, "-yes-revoke-unverified") {
		t.Fatalf("-force-revoke without confirmation: exit %d\n%s", code, out)
	}
	if len(q.keys()) != 1 {
		t.Fatal("an unconfirmed -force-revoke changed something")
	}
	out, code = q.rekey("rotate", "-config", q.dir, "-compromised", "-force-revoke", "-yes-revoke-unverified", "-reason", "abused right now", "quickstart")
	t.Logf("rekey rotate -compromised -force-revoke:\n%s", out)
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if _, ok := q.keys()[old]; ok {
		t.Fatal("the forced variant left the old key alive")
	}
	if !strings.Contains(out, "FORCED") {
		t.Fatalf("the summary does not say the revocation was forced:\n%s", out)
	}
	lines, _ := q.audit()
	if _, ok := findAudit(lines, "verify", "forced"); !ok {
		t.Error("no audit record says verify was forced")
	}
	if l, ok := findAudit(lines, "revoke", "forced"); !ok || l.Note != "abused right now" {
		t.Errorf("no audit record says the revocation was forced: %+v", l)
	}
}
