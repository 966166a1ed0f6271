package policies

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// daysProvider takes key_ttl in whole days only, as the mysql provider
// does (PASSWORD EXPIRE INTERVAL N DAY).
type daysProvider struct{}

func (daysProvider) Target() string { return "days:x" }
func (daysProvider) Create(context.Context, plugin.Rotation) (plugin.Key, error) {
	return plugin.Key{}, errors.ErrUnsupported
}
func (daysProvider) Delete(context.Context, string) error { return nil }
func (daysProvider) AcceptsKeyTTL() bool                  { return true }
func (daysProvider) CheckKeyTTL(d time.Duration) error {
	if d%(24*time.Hour) != 0 {
		return errors.New("key_ttl must be a whole number of days")
	}
	return nil
}

func init() {
	providers.Register("test_ttl_days", func(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
		return daysProvider{}, env.Decode(body, &struct{}{})
	})
}

// TestKeyTTLChecker: a provider that honours only some lifetimes refuses
// the others at validate, at the policy's key_ttl.
func TestKeyTTLChecker(t *testing.T) {
	for ttl, want := range map[string]string{`"2d"`: "", `"36h"`: "whole number of days"} {
		src := `
policy "p" {
  every = "30d"
  key_ttl = ` + ttl + `
  provider "test_ttl_days" {
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
