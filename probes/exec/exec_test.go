package exec

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
)

const canary = "CANARY-exec-probe-3b8e61d0f4"

func decode(t *testing.T, src string) (probes.Probe, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	wd, _ := os.Getwd()
	env := &plugin.Env{Policy: "payments", Kind: "exec", BaseDir: wd, DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return New(env, f.Body)
}

func mustProbe(t *testing.T, src string) probes.Probe {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the tests run /bin/sh scripts")
	}
	p, diags := decode(t, src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

func q(s string) string { return strconv.Quote(s) }

var newKey = plugin.Key{ID: "key-0042", Value: secret.Fields{"token": secret.New(canary)}}

func TestPassKeyGivesTheKeyInTheEnvironment(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `
command  = ["testdata/check-key.sh"]
env      = { EXPECTED = `+q(canary)+` }
pass_key = true
`)
	if err := p.Check(context.Background(), newKey); err != nil {
		t.Fatalf("probe failed with the right key: %v", err)
	}

	wrong := plugin.Key{ID: "key-0042", Value: secret.Fields{"token": secret.New("not-the-canary")}}
	err := p.Check(context.Background(), wrong)
	var exitErr *command.ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 7 || !strings.Contains(err.Error(), "the API refused the token") || !strings.Contains(err.Error(), "status 7") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "not-the-canary") {
		t.Fatalf("error leaks a key: %v", err)
	}
}

func TestWithoutPassKeyTheKeyIsAbsent(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `
command = ["/bin/sh", "-c", "if env | grep -q '^REKEY_KEY_'; then echo leaked >&2; exit 1; fi; test \"$REKEY_POLICY\" = payments"]
`)
	if err := p.Check(context.Background(), newKey); err != nil {
		t.Fatalf("the key reached the command without pass_key: %v", err)
	}
	// And the script in testdata fails for want of it.
	p = mustProbe(t, `
command = ["testdata/check-key.sh"]
env     = { EXPECTED = "x" }
`)
	if err := p.Check(context.Background(), newKey); err == nil {
		t.Fatal("check-key.sh passed without the key")
	}
}

func TestStderrWithTheKeyIsWithheld(t *testing.T) {
	t.Parallel()
	for _, passKey := range []bool{true, false} {
		p := mustProbe(t, `
command  = ["/bin/sh", "-c", "echo \"login failed for token $${REKEY_KEY_TOKEN:-$FALLBACK}\" >&2; exit 3"]
env      = { FALLBACK = `+q(canary)+` }
pass_key = `+strconv.FormatBool(passKey)+`
`)
		err := p.Check(context.Background(), newKey)
		if err == nil || strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "withheld") {
			t.Fatalf("pass_key %v: err = %v", passKey, err)
		}
	}
}

func TestKeyWithoutValueAfterRestart(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `
command  = ["/bin/sh", "-c", "test \"$REKEY_KEY_ID\" = key-0042 && test -z \"$${REKEY_KEY_TOKEN+set}\""]
pass_key = true
`)
	if err := p.Check(context.Background(), plugin.Key{ID: "key-0042"}); err != nil {
		t.Fatal(err)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `
command     = ["/bin/sh", "-c", "sleep 60"]
run_timeout = "200ms"
`)
	if err := p.Check(context.Background(), newKey); !errors.Is(err, command.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

func TestLongStderrKeepsTheLastKiB(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 500 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; echo 'final: connection refused' >&2; exit 2"]
`)
	err := p.Check(context.Background(), newKey)
	var exitErr *command.ExitError
	if !errors.As(err, &exitErr) || len(exitErr.Stderr) > 1024 || !strings.HasSuffix(exitErr.Stderr, "final: connection refused") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, summary string
		line         int
	}{
		{`env = {}`, "Missing required argument", 1},
		{`command = []`, "Empty command", 1},
		{"command = [\"x\"]\nrun_timeout = \"fast\"", "Invalid run_timeout", 2},
		{"command = [\"x\"]\ntimeout = \"5m\"", "Unsupported argument", 2},
		{"command = [\"x\"]\nenv = { \"BAD-NAME\" = \"x\" }", "Invalid environment variable name", 2},
	}
	for _, c := range cases {
		p, diags := decode(t, c.src)
		if !diags.HasErrors() || p != nil {
			t.Errorf("%q: want an error, got %v", c.src, diags)
			continue
		}
		if d := diags[0]; d.Summary != c.summary || d.Subject.Start.Line != c.line {
			t.Errorf("%q: %q at %v, want %q at line %d", c.src, d.Summary, d.Subject, c.summary, c.line)
		}
	}
}
