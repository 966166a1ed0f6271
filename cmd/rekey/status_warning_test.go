package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// TestStatusShowsKeyTimeWarning: a key whose provider reported a creation
// time in the future is flagged under the table, and its age is the one
// counted from when rekey first saw it.
func TestStatusShowsKeyTimeWarning(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	_, warning := rotator.KeyAgeFrom(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-24*time.Hour), now)
	var b bytes.Buffer
	writeStatus(&b, []rotator.PolicyStatus{{Policy: "pay", Configured: true, CurrentKey: "****abcd", KeyAgeSec: 86400, Warning: warning, Generation: 1, LastResult: "done"}}, now, "")
	out := b.String()
	if warning == "" || !strings.Contains(out, "pay: warning: the provider reports the key created at 2099-01-01T00:00:00Z") || !strings.Contains(out, "24h00m") {
		t.Fatalf("status output:\n%s", out)
	}
}
