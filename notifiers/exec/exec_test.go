package exec

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.uber.org/goleak"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/notifiers/dispatch"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func decode(t *testing.T, dir, src string) (notifiers.Notifier, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	env := &plugin.Env{Policy: "payments", Kind: "exec", BaseDir: dir, DefRange: hcl.Range{Filename: "policy.hcl"}}
	return New(env, f.Body)
}

func script(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "notify.sh"), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestScriptReceivesJSONOnStdin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script(t, dir, `cat > "$1"; env > "$1.env"`)
	n, diags := decode(t, dir, `
command = ["./notify.sh", "`+out+`"]
env     = { TEAM = "platform" }
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	e := rotator.Event{Policy: "payments", RotationID: "rot-7", Step: rotator.StepRolledBack, Result: rotator.ResultRolledBack, Error: "verify failed"}
	d := dispatch.New([]dispatch.Route{{Kind: "exec", On: notifiers.DefaultFilter(), Notifier: n}}, dispatch.Options{Hostname: "h"})
	d.Start(context.Background())
	d.Observe(context.Background(), e)
	d.Close()

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m notifiers.Message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("stdin was not a JSON message: %v: %q", err, data)
	}
	if m.Event != "rolled_back" || m.Policy != "payments" || m.RotationID != "rot-7" || m.Error != "verify failed" || m.Hostname != "h" {
		t.Errorf("message = %+v", m)
	}
	envData, _ := os.ReadFile(out + ".env")
	env := string(envData)
	for _, want := range []string{"REKEY_EVENT=rolled_back", "REKEY_POLICY=payments", "REKEY_ROTATION_ID=rot-7", "REKEY_DELIVERY_ID=" + m.ID, "TEAM=platform"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "NOTIFY_SOCKET") {
		t.Error("the daemon's NOTIFY_SOCKET leaked into the notify command")
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script(t, dir, "echo 'mail server down' >&2\nexit 3\n")
	m := dispatch.NewMessage("failure", "h", rotator.Event{Policy: "p"})

	n, diags := decode(t, dir, `command = ["./notify.sh"]`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	err := n.Notify(context.Background(), m)
	if err == nil || plugin.IsPermanent(err) || !strings.Contains(err.Error(), "status 3") || !strings.Contains(err.Error(), "mail server down") {
		t.Errorf("failing script: err = %v, want a retryable error with status and stderr", err)
	}

	missing, diags := decode(t, dir, `command = ["./absent.sh"]`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := missing.Notify(context.Background(), m); !plugin.IsPermanent(err) {
		t.Errorf("missing program: err = %v, want permanent", err)
	}

	script2 := filepath.Join(dir, "slow.sh")
	if err := os.WriteFile(script2, []byte("#!/bin/sh\nsleep 60 &\nwait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	slow, diags := decode(t, dir, `
command = ["./slow.sh"]
timeout = "50ms"
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := slow.Notify(context.Background(), m); err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Errorf("hung script: err = %v", err)
	}
}

// TestErrorsAreSanitisedAndBounded: the shared runner keeps only the
// cleaned end of stderr, and a chatty stdout is no error.
func TestErrorsAreSanitisedAndBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script(t, dir, "head -c 2000000 /dev/zero\n{ printf 'START'; head -c 3000 /dev/zero | tr '\\0' x; printf '\\033[31mEND\\n'; } >&2\nexit 4\n")
	n, diags := decode(t, dir, `command = ["./notify.sh"]`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	err := n.Notify(context.Background(), dispatch.NewMessage("failure", "h", rotator.Event{Policy: "p"}))
	if err == nil || plugin.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "status 4") || !strings.Contains(msg, "[31mEND") || strings.Contains(msg, "\033") || strings.Contains(msg, "START") || len(msg) > 1000 {
		t.Errorf("err = %q (%d bytes), want status 4 and the cleaned, bounded end of stderr", msg, len(msg))
	}
}

func TestConfigDiagnostics(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		`timeout = "5s"`: `"command" is required`,
		`command = []`:   "must start with the program",
		`command = ["x"]` + "\n" + `timeout = "x"`:           "Invalid timeout",
		`command = ["x"]` + "\n" + `env = { REKEY_X = "1" }`: "reserved",
		`command = ["x"]` + "\n" + `shell = true`:            "Unsupported argument",
	} {
		n, diags := decode(t, t.TempDir(), src)
		if !diags.HasErrors() || n != nil || !strings.Contains(diags.Error(), want) {
			t.Errorf("%q: diags = %v, want %q", src, diags, want)
		}
	}
}
