package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// TestSelector: status, plan and rotate act only on the policies whose
// labels match -selector; a selector matching nothing, a malformed one,
// or one given with policy names is a usage error (exit 1).
func TestSelector(t *testing.T) {
	q := newQuickstart(t, `labels = { env = "dev", team = "payments" }`)
	q.seed()
	out, code := q.rekey("status", "-config", q.dir, "-selector", "env=dev,team=payments")
	if code != ExitOK || !strings.Contains(out, "\nquickstart ") {
		t.Fatalf("status -selector env=dev,team=payments: %d\n%s", code, out)
	}
	out, code = q.rekey("status", "-config", q.dir, "-selector", "env=prod")
	if code != ExitOK || strings.Contains(out, "quickstart") {
		t.Fatalf("status -selector env=prod shows a dev policy: %d\n%s", code, out)
	}
	out, code = q.rekey("status", "-config", q.dir, "-json", "-selector", "team=payments")
	if code != ExitOK || !strings.Contains(out, `"labels": {`) {
		t.Fatalf("status -json does not show the labels: %d\n%s", code, out)
	}
	out, code = q.rekey("plan", "-config", q.dir, "-selector", "env=dev")
	if code != ExitOK || !strings.HasPrefix(out, "quickstart: ") {
		t.Fatalf("plan -selector env=dev: %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"plan", "-config", q.dir, "-selector", "env=prod"},
		{"rotate", "-config", q.dir, "-selector", "env=prod"},
		{"rotate", "-config", q.dir, "-selector", "env=dev", "quickstart"},
		{"status", "-config", q.dir, "-selector", "env"},
		{"rotate", "-config", q.dir, "-reason", "x", "quickstart"},
	} {
		out, code := q.rekey(args...)
		if code != ExitConfig {
			t.Errorf("rekey %s: exit %d, want %d\n%s", strings.Join(args, " "), code, ExitConfig, out)
		}
	}
	if len(q.keys()) != 1 {
		t.Fatal("a refused command changed the keys")
	}
	out, code = q.rekey("rotate", "-config", q.dir, "-selector", "env=dev", "-wait")
	if code != ExitOK || !strings.Contains(out, "quickstart: done") {
		t.Fatalf("rotate -selector env=dev: %d\n%s", code, out)
	}
}

// TestStatusShowsExpiry: the EXPIRES column counts down, and an expired key
// is the loudest line status prints.
func TestStatusShowsExpiry(t *testing.T) {
	now := mustParse(t, "2026-03-01T12:00:00Z")
	var b strings.Builder
	writeStatus(&b, []rotator.PolicyStatus{
		{Policy: "soon", Configured: true, CurrentKey: "****abcd", KeyExpires: now.Add(90 * time.Minute)},
		{Policy: "gone", Configured: true, CurrentKey: "****efgh", KeyExpires: now.Add(-time.Minute), Expired: true},
		{Policy: "never", Configured: true, CurrentKey: "****ijkl"},
	}, now, "/srv/rekey")
	out := b.String()
	for _, want := range []string{"in 1h30m", "EXPIRED", "gone: ALERT: EXPIRED: the current key expired at 2026-03-01T11:59:00Z", "then run: rekey rotate -config /srv/rekey gone"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "soon: ALERT") || strings.Contains(out, "never: ALERT") {
		t.Errorf("an alert for a key that did not expire:\n%s", out)
	}
}

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
