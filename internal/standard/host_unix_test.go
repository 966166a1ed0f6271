//go:build unix

package standard_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/policies"
)

// TestHostChecksOfRealKinds: the exec provider's declared commands and the
// file sink's declared output are checked like any other kind's, by the
// one load path validate and run share (issue 8).
func TestHostChecksOfRealKinds(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	state := filepath.Join(dir, "state")
	for _, d := range []string{conf, state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(conf, "key.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o777); err != nil {
		t.Fatal(err)
	}
	src := `state_dir = "` + state + `"
policy "p" {
  every = "30d"
  provider "exec" {
    create = ["./key.sh", "create"]
    delete = ["/nonexistent/key", "delete"]
  }
  sink "file" {
    path   = "` + state + `/journal.db"
    format = "env"
  }
  probe "exec" {
    command = ["/bin/true"]
  }
}
`
	if err := os.WriteFile(filepath.Join(conf, "rekey.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := policies.Load(conf)
	if cfg != nil {
		t.Fatal("loaded")
	}
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
	}
	want := "Insecure command; Command not found; File inside state_dir"
	if strings.Join(got, "; ") != want {
		t.Errorf("got %q, want %q: %v", got, want, diags)
	}
}
