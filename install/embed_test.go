package install

import (
	"os"
	"strings"
	"testing"
)

func TestSystemdUnitEmbedsTheFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("rekey.service")
	if err != nil {
		t.Fatal(err)
	}
	if SystemdUnit != string(b) {
		t.Fatal("install.SystemdUnit differs from install/rekey.service on disk")
	}
	if n := strings.Count(SystemdUnit, "\nExecStart=/usr/bin/rekey run -config /etc/rekey\n"); n != 1 {
		t.Fatalf("rekey.service has %d ExecStart=/usr/bin/rekey run -config /etc/rekey lines, want 1 (rekey service install rewrites that line)", n)
	}
}
