package exec

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/secret"
)

const canary = "CANARY-exec-reload-c07d2a95e1"

func mustReloader(t *testing.T, src string) reloaders.Reloader {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the tests run /bin/sh")
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r, diags := New(&plugin.Env{Policy: "payments", Kind: "exec", DefRange: hcl.Range{Filename: "policy.hcl"}}, f.Body)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return r
}

var (
	rot = plugin.Rotation{ID: "rot-77", Policy: "payments", Generation: 12}
	key = plugin.Key{ID: "key-9", Value: secret.Fields{"api_token": secret.New(canary)}}
)

func TestReloadTouchesTheMarker(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "reloaded")
	r := mustReloader(t, `
command = ["/bin/sh", "-c", "env | grep '^REKEY_' | sort > \"$MARKER\""]
env     = { MARKER = `+strconv.Quote(marker)+` }
`)
	if err := r.Reload(context.Background(), rot, key); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("the command did not run: %v", err)
	}
	want := "REKEY_GENERATION=12\nREKEY_POLICY=payments\nREKEY_ROTATION_ID=rot-77\n"
	if string(b) != want {
		t.Fatalf("environment:\n%s\nwant\n%s", b, want)
	}
}

func TestReloadWithPassKey(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "key")
	r := mustReloader(t, `
command  = ["/bin/sh", "-c", "printf '%s %s' \"$REKEY_KEY_ID\" \"$REKEY_KEY_API_TOKEN\" > \"$MARKER\""]
env      = { MARKER = `+strconv.Quote(marker)+` }
pass_key = true
`)
	if err := r.Reload(context.Background(), rot, key); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "key-9 "+canary {
		t.Fatalf("the command saw %q", b)
	}
}

func TestReloadFailure(t *testing.T) {
	t.Parallel()
	r := mustReloader(t, `
command  = ["/bin/sh", "-c", "echo \"Job for payments.service failed; token $REKEY_KEY_API_TOKEN\" >&2; exit 1"]
pass_key = true
`)
	err := r.Reload(context.Background(), rot, key)
	if err == nil || !strings.Contains(err.Error(), "status 1") || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v", err)
	}
	r = mustReloader(t, `
command = ["/bin/sh", "-c", "echo 'Job for payments.service failed' >&2; exit 1"]
`)
	err = r.Reload(context.Background(), rot, key)
	if err == nil || !strings.Contains(err.Error(), "Job for payments.service failed") {
		t.Fatalf("err = %v", err)
	}
}
