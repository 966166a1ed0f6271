package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyTTLChecker: a provider that honours only some lifetimes (here
// whole days, as mysql) refuses the others at validate, at the policy's
// key_ttl.
func TestKeyTTLChecker(t *testing.T) {
	for ttl, want := range map[string]string{`"2d"`: "", `"36h"`: "whole number of days"} {
		src := `
policy "p" {
  every = "30d"
  key_ttl = ` + ttl + `
  provider "test" {
    name         = "p"
    key_ttl_days = true
  }
  sink "test" {
    path = "p.env"
  }
  probe "test" {
    target = "key"
  }
}
`
		path := filepath.Join(t.TempDir(), "rekey.hcl")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		l := &Loader{LookupEnv: testEnv, skipHostChecks: true}
		_, diags := l.Load(path)
		errs := ""
		if diags.HasErrors() {
			errs = render(t, l.Files(), diags)
		}
		switch {
		case want == "" && errs != "":
			t.Errorf("key_ttl %s refused:\n%s", ttl, errs)
		case want != "" && (!strings.Contains(errs, want) || !strings.Contains(errs, "rekey.hcl:4:") || !strings.Contains(errs, "Unsupported key_ttl")):
			t.Errorf("key_ttl %s: want %q at rekey.hcl:4, got:\n%s", ttl, want, errs)
		}
	}
}
