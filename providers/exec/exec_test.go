package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

const canary = "CANARY-exec-provider-7f3a9c1e5b"

func decode(t *testing.T, src string) (providers.Provider, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	env := &plugin.Env{Policy: "legacy-api", Kind: "exec", BaseDir: wd, DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return New(env, f.Body)
}

func mustDecode(t *testing.T, src string) providers.Provider {
	t.Helper()
	p, diags := decode(t, src)
	if diags.HasErrors() {
		t.Fatalf("decoding: %s", diags)
	}
	return p
}

// hclString quotes s as an HCL string literal.
func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

func skipWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the tests run /bin/sh scripts")
	}
}

func keystore(t *testing.T, extra string) (providers.Provider, string) {
	t.Helper()
	state := t.TempDir()
	src := `
create     = ["testdata/keystore.sh", "create"]
delete     = ["testdata/keystore.sh", "delete"]
list       = ["testdata/keystore.sh", "list"]
deactivate = ["testdata/keystore.sh", "deactivate"]
activate   = ["testdata/keystore.sh", "activate"]
last_used  = ["testdata/keystore.sh", "last_used"]
max_keys   = 2
usage_delay = "4h"
timeout    = "30s"
env        = { STATE = ` + hclString(state) + ` }
` + extra
	return mustDecode(t, src), state
}

func TestLifecycleAgainstAScriptedSystem(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	ctx := context.Background()
	p, state := keystore(t, "")

	if got := p.Target(); got != "exec:legacy-api" {
		t.Fatalf("target = %q", got)
	}
	rot := plugin.Rotation{ID: "rot-0001", Policy: "legacy-api", Generation: 7}
	k1, err := p.Create(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID == "" || len(k1.Value) != 1 || len(k1.Value["token"].Reveal()) != 32 || k1.CreatedAt.IsZero() {
		t.Fatalf("created key = %+v", k1)
	}
	env, _ := os.ReadFile(filepath.Join(state, "env.create"))
	if string(env) != "REKEY_GENERATION=7\nREKEY_POLICY=legacy-api\nREKEY_ROTATION_ID=rot-0001\n" {
		t.Fatalf("create environment:\n%s", env)
	}

	again, err := p.Create(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != k1.ID || !again.Value["token"].Equal(k1.Value["token"]) {
		t.Fatal("creating twice with one rotation id made a second key")
	}

	keys, err := p.(providers.Lister).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != k1.ID || keys[0].Status != plugin.KeyActive || keys[0].RotationID != "rot-0001" || keys[0].CreatedAt.IsZero() {
		t.Fatalf("list = %+v", keys)
	}

	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-0002", Policy: "legacy-api", Generation: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(ctx, plugin.Rotation{ID: "rot-0003", Policy: "legacy-api", Generation: 9}); err == nil || !strings.Contains(err.Error(), "limit of 2 keys reached") {
		t.Fatalf("third key: err = %v, want the script's stderr", err)
	}

	d := p.(providers.Deactivator)
	if err := d.Deactivate(ctx, k1.ID); err != nil {
		t.Fatal(err)
	}
	env, _ = os.ReadFile(filepath.Join(state, "env.deactivate"))
	if string(env) != "REKEY_KEY_ID="+k1.ID+"\nREKEY_POLICY=legacy-api\n" {
		t.Fatalf("deactivate environment:\n%s", env)
	}
	keys, _ = p.(providers.Lister).List(ctx)
	statuses := map[string]plugin.KeyStatus{}
	for _, k := range keys {
		statuses[k.ID] = k.Status
	}
	if statuses[k1.ID] != plugin.KeyInactive || statuses[k2.ID] != plugin.KeyActive {
		t.Fatalf("after deactivate: %v", statuses)
	}
	if err := d.Activate(ctx, k1.ID); err != nil {
		t.Fatal(err)
	}

	u := p.(providers.UsageReporter)
	if u.UsageReportingDelay() != 4*time.Hour {
		t.Fatalf("usage delay = %v", u.UsageReportingDelay())
	}
	if last, err := u.LastUsed(ctx, k1.ID); err != nil || !last.IsZero() {
		t.Fatalf("never used: %v, %v", last, err)
	}
	if err := os.WriteFile(filepath.Join(state, k1.ID+".used"), []byte("2025-03-01T10:00:00Z"), 0o600); err != nil {
		t.Fatal(err)
	}
	if last, err := u.LastUsed(ctx, k1.ID); err != nil || !last.Equal(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("used: %v, %v", last, err)
	}
	if p.(providers.Capacity).MaxKeys() != 2 {
		t.Fatal("max keys")
	}

	for range 2 {
		if err := p.Delete(ctx, k1.ID); err != nil {
			t.Fatalf("delete (twice must succeed): %v", err)
		}
	}
	if err := d.Deactivate(ctx, k1.ID); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("deactivating a deleted key: %v", err)
	}
	if err := p.Delete(ctx, k2.ID); err != nil {
		t.Fatal(err)
	}
	keys, err = p.(providers.Lister).List(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("list after delete: %v, %v", keys, err)
	}
}

func TestOptionalInterfacesOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	base := `
create = ["/bin/true"]
delete = ["/bin/true"]
`
	cases := []struct {
		extra                        string
		list, capacity, deact, usage bool
	}{
		{"", false, false, false, false},
		{`list = ["/bin/true"]`, true, false, false, false},
		{"list = [\"/bin/true\"]\nmax_keys = 2", true, true, false, false},
		{"deactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]", false, false, true, false},
		{`last_used = ["/bin/true"]`, false, false, false, true},
		{"list = [\"/bin/true\"]\ndeactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]", true, false, true, false},
		{"list = [\"/bin/true\"]\nlast_used = [\"/bin/true\"]", true, false, false, true},
		{"deactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]\nlast_used = [\"/bin/true\"]", false, false, true, true},
		{"list = [\"/bin/true\"]\nmax_keys = 3\ndeactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]", true, true, true, false},
		{"list = [\"/bin/true\"]\nmax_keys = 3\nlast_used = [\"/bin/true\"]", true, true, false, true},
		{"list = [\"/bin/true\"]\ndeactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]\nlast_used = [\"/bin/true\"]", true, false, true, true},
		{"list = [\"/bin/true\"]\nmax_keys = 2\ndeactivate = [\"/bin/true\"]\nactivate = [\"/bin/true\"]\nlast_used = [\"/bin/true\"]", true, true, true, true},
	}
	for _, c := range cases {
		p := mustDecode(t, base+c.extra)
		_, list := providers.AsLister(p)
		_, capacity := providers.AsCapacity(p)
		_, deact := providers.AsDeactivator(p)
		_, usage := providers.AsUsageReporter(p)
		if list != c.list || capacity != c.capacity || deact != c.deact || usage != c.usage {
			t.Errorf("config %q: lister %v capacity %v deactivator %v usage %v; want %v %v %v %v",
				c.extra, list, capacity, deact, usage, c.list, c.capacity, c.deact, c.usage)
		}
		if p.Target() != "exec:legacy-api" {
			t.Errorf("config %q: target %q", c.extra, p.Target())
		}
	}
}

func TestConfigurationErrorsPointAtTheAttribute(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src, summary string
		line               int
	}{
		{"missing create", "delete = [\"/bin/true\"]", "Missing command", 1},
		{"empty delete", "create = [\"/bin/true\"]\ndelete = []", "Empty command", 2},
		{"deactivate alone", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\ndeactivate = [\"/bin/true\"]", "Deactivate and activate go together", 3},
		{"max_keys without list", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\n\nmax_keys = 2", "max_keys needs a list command", 4},
		{"max_keys of one", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\nlist = [\"/bin/true\"]\nmax_keys = 1", "Invalid max_keys", 4},
		{"usage_delay without last_used", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\nusage_delay = \"4h\"", "usage_delay needs a last_used command", 3},
		{"bad timeout", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\ntimeout = \"soon\"", "Invalid timeout", 3},
		{"zero timeout", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\ntimeout = \"0s\"", "Invalid timeout", 3},
		{"reserved env", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\nenv = { REKEY_POLICY = \"x\" }", "Reserved environment variable name", 3},
		{"empty target", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\ntarget = \"\"", "Empty target", 3},
		{"unknown attribute", "create = [\"/bin/true\"]\ndelete = [\"/bin/true\"]\ncreat = [\"x\"]", "Unsupported argument", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, diags := decode(t, c.src)
			if !diags.HasErrors() || p != nil {
				t.Fatalf("want an error, got %v", diags)
			}
			d := diags[0]
			if d.Summary != c.summary || d.Subject == nil || d.Subject.Start.Line != c.line {
				t.Fatalf("diagnostic = %q at %v; want %q at line %d", d.Summary, d.Subject, c.summary, c.line)
			}
		})
	}
}

func TestTargetAndRelativeDir(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	p := mustDecode(t, `
create = ["/bin/sh", "-c", "printf '{\"id\":\"%s\",\"value\":{\"v\":\"x\"}}' \"$(pwd)\""]
delete = ["/bin/true"]
target = "legacy:svc-payments"
dir    = "testdata"
`)
	if p.Target() != "legacy:svc-payments" {
		t.Fatalf("target = %q", p.Target())
	}
	k, err := p.Create(context.Background(), plugin.Rotation{ID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if k.ID != filepath.Join(wd, "testdata") {
		t.Fatalf("the command ran in %q", k.ID)
	}
}

func TestBadOutputNeverEchoesStdout(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	cases := map[string]string{
		"not json":              canary,
		"syntax error":          `{"id": "k", "value": {"token": "` + canary + `"`,
		"unknown top field":     `{"id": "k", "value": {"token": "x"}, "` + canary + `": 1}`,
		"value not an object":   `{"id": "k", "value": "` + canary + `"}`,
		"field is a number":     `{"id": "k", "value": {"token": 987654321}}`,
		"field is null":         `{"id": "k", "value": {"token": null, "other": "` + canary + `"}}`,
		"empty field":           `{"id": "k", "value": {"token": "", "other": "` + canary + `"}}`,
		"empty value":           `{"id": "k", "value": {}, "note": "` + canary + `"}`,
		"missing id":            `{"value": {"token": "` + canary + `"}}`,
		"id with control chars": `{"id": "a\nb", "value": {"token": "` + canary + `"}}`,
		"bad created_at":        `{"id": "k", "value": {"token": "x"}, "created_at": "` + canary + `"}`,
		"bad expires_at":        `{"id": "k", "value": {"token": "x"}, "expires_at": "` + canary + `"}`,
		"two objects":           `{"id": "k", "value": {"token": "x"}} {"id": "` + canary + `"}`,
		"a list":                `["` + canary + `"]`,
		"empty":                 ``,
	}
	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := mustDecode(t, `
create = ["/bin/sh", "-c", "printf '%s' \"$OUT\""]
delete = ["/bin/true"]
env    = { OUT = `+hclString(out)+` }
`)
			_, err := p.Create(context.Background(), plugin.Rotation{ID: "r"})
			if err == nil {
				t.Fatal("want an error")
			}
			t.Log(err)
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "987654321") {
				t.Fatalf("error echoes stdout: %v", err)
			}
			if !plugin.IsPermanent(err) {
				t.Fatalf("a contract violation must be permanent: %v", err)
			}
		})
	}
}

func TestFailedCreateReportsStderrNotStdout(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	for _, tc := range []struct {
		name, script string
		reported     bool
	}{
		{"nothing on stdout", `echo 'quota exceeded for svc-payments' >&2; exit 4`, true},
		// Once stdout carried anything, stderr could repeat it in any
		// form: it is withheld, only the exit status is reported.
		{"a key on stdout", `printf '{\"id\":\"k\",\"value\":{\"t\":\"%s\"}}' \"$OUT\"; echo 'quota exceeded for svc-payments' >&2; exit 4`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustDecode(t, `
create = ["/bin/sh", "-c", "`+tc.script+`"]
delete = ["/bin/true"]
env    = { OUT = `+hclString(canary)+` }
`)
			_, err := p.Create(context.Background(), plugin.Rotation{ID: "r"})
			var exitErr *command.ExitError
			if !errors.As(err, &exitErr) || exitErr.Code != 4 {
				t.Fatalf("err = %v, want exit status 4", err)
			}
			if strings.Contains(err.Error(), "quota exceeded for svc-payments") != tc.reported || strings.Contains(err.Error(), canary) {
				t.Fatalf("err = %v (stderr reported: want %v)", err, tc.reported)
			}
		})
	}
}

// TestFailedCreateNeverEchoesTheKey: the create command prints a valid key,
// exits 1 and echoes the key on stderr (issue 8). The error must report
// the exit status and that stdout was discarded, and hold nothing of the
// key.
func TestFailedCreateNeverEchoesTheKey(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	p := mustDecode(t, `
create = ["/bin/sh", "-c", "printf '{\"id\":\"k\",\"value\":{\"t\":\"%s\"}}' \"$OUT\"; echo \"created $OUT\" >&2; exit 1"]
delete = ["/bin/true"]
env    = { OUT = `+hclString(canary)+` }
`)
	_, err := p.Create(context.Background(), plugin.Rotation{ID: "r"})
	var exitErr *command.ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 1 {
		t.Fatalf("err = %v, want exit status 1", err)
	}
	if strings.Contains(err.Error(), canary[len("CANARY"):]) || !strings.Contains(err.Error(), "stderr withheld") || !strings.Contains(err.Error(), "bytes on stdout") {
		t.Fatalf("err = %v", err)
	}
}

func TestListAndLastUsedContract(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	cases := []struct {
		name, list, lastUsed string
		listOK, usedOK       bool
	}{
		{"empty list", `{"keys": []}`, `{"last_used": null}`, true, true},
		{"missing keys", `{}`, `{}`, false, false},
		{"bad status", `{"keys": [{"id": "a", "status": "revoked"}]}`, `{"last_used": 5}`, false, false},
		{"unknown key field", `{"keys": [{"id": "a", "status": "active", "owner": "x"}]}`, `{"last_used": "yesterday"}`, false, false},
		{"minimal entries", `{"keys": [{"id": "a", "status": "active"}, {"id": "b", "status": "inactive", "created_at": "2025-01-31T12:00:00Z"}]}`, `{"last_used": "2025-01-31T12:00:00.5+01:00"}`, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := mustDecode(t, `
create    = ["/bin/true"]
delete    = ["/bin/true"]
list      = ["/bin/sh", "-c", "printf '%s' \"$LIST\""]
last_used = ["/bin/sh", "-c", "printf '%s' \"$USED\""]
env       = { LIST = `+hclString(c.list)+`, USED = `+hclString(c.lastUsed)+` }
`)
			_, err := p.(providers.Lister).List(context.Background())
			if (err == nil) != c.listOK {
				t.Errorf("list: err = %v", err)
			}
			_, err = p.(providers.UsageReporter).LastUsed(context.Background(), "a")
			if (err == nil) != c.usedOK {
				t.Errorf("last_used: err = %v", err)
			}
		})
	}
}
