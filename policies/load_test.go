package policies

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/probes"
)

// testEnv is the environment env() sees in these tests.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"REKEY_TEST_SECRET": "from-the-environment",
	}[name]
	return v, ok
}

func render(t *testing.T, files map[string]*hcl.File, diags hcl.Diagnostics) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteDiagnostics(&b, files, diags, false); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestLoadGoodDirectory(t *testing.T) {
	t.Parallel()
	l := &Loader{LookupEnv: testEnv}
	cfg, diags := l.Load("testdata/good")
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("load failed:\n%s", render(t, l.Files(), diags))
	}
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != "Policy rotates blind" {
		t.Errorf("want exactly the rotate_blind warning, got:\n%s", render(t, l.Files(), diags))
	}
	abs, _ := filepath.Abs("testdata/good")
	if want := []string{"testdata/good/10-daemon.hcl", "testdata/good/20-more.hcl"}; strings.Join(cfg.Files, ",") != strings.Join(want, ",") {
		t.Errorf("Files = %v, want %v", cfg.Files, want)
	}
	if want := filepath.Join(abs, "state"); cfg.StateDir != want {
		t.Errorf("StateDir = %q, want %q (relative to the file setting it)", cfg.StateDir, want)
	}
	if cfg.Log != (LogSettings{Level: "debug", Format: "json"}) {
		t.Errorf("Log = %+v", cfg.Log)
	}
	if cfg.Server == nil || cfg.Server.Listen != "127.0.0.1:9999" {
		t.Errorf("Server = %+v", cfg.Server)
	}
	c, ok := cfg.Connections.Get("testconn", "main")
	if !ok {
		t.Fatal("connection testconn.main missing")
	}
	if tc := c.(*testConn); tc.Address != "https://vault.internal:8200" || tc.TokenFile != filepath.Join(abs, "token") {
		t.Errorf("connection = %+v", tc)
	}

	var names []string
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "payments-aws,db.reports_ro,blind" {
		t.Fatalf("policies in order %s, want files in lexical order and blocks in file order", got)
	}

	p := cfg.Policies[0]
	s := p.Schedule
	if s.Every != 30*Day || s.Jitter != time.Hour || s.MaxAge != 45*Day || s.Cron != nil {
		t.Errorf("schedule = %+v", s)
	}
	if s.Window == nil || s.Window.Expr != "Mon-Thu 09:00-16:00 Europe/Berlin" || s.Window.Location.String() != "Europe/Berlin" ||
		s.Window.Start != 9*time.Hour || s.Window.End != 16*time.Hour ||
		s.Window.Days != [7]bool{false, true, true, true, true, false, false} {
		t.Errorf("window = %+v", s.Window)
	}
	if p.StepTimeout != 5*time.Minute || p.MaxFailures != 3 || p.RotateBlind {
		t.Errorf("policy settings = %v %v %v", p.StepTimeout, p.MaxFailures, p.RotateBlind)
	}
	prov := p.Provider.Provider.(deactivatingTestProvider).testProvider
	if p.Provider.Kind != "test" || prov.Target() != "test:svc-payments" || prov.secret != "from-the-environment" || prov.conn == nil || prov.conn.Name != "main" {
		t.Errorf("provider = %+v", prov)
	}
	if prov.env.Policy != "payments-aws" || prov.env.Kind != "test" || prov.env.BaseDir != abs || prov.env.StateDir != cfg.StateDir ||
		prov.env.DefRange.Filename != "testdata/good/10-daemon.hcl" || prov.env.DefRange.Start.Line != 26 {
		t.Errorf("provider env = %+v", prov.env)
	}
	if len(p.Sinks) != 2 || p.Sinks[0].Sink.Location() != "test:"+filepath.Join(abs, "out/payments.env") ||
		p.Sinks[0].Fields["AWS_SECRET_ACCESS_KEY"] != "secret_access_key" || p.Sinks[1].Fields != nil {
		t.Errorf("sinks = %+v", p.Sinks)
	}
	if len(p.Probes) != 2 {
		t.Fatalf("probes = %+v", p.Probes)
	}
	if pb := p.Probes[0]; pb.Kind != "test_key" || pb.Target != probes.TargetKey || pb.Timeout != 2*time.Minute || pb.Interval != time.Second || pb.Successes != 1 {
		t.Errorf("key probe = %+v (want the Targeter's default target and default retries)", pb)
	}
	if pb := p.Probes[1]; pb.Kind != "test" || pb.Target != probes.TargetDependent || pb.Timeout != 5*time.Minute || pb.Interval != 2*time.Second || pb.Successes != 3 {
		t.Errorf("dependent probe = %+v", pb)
	}
	if len(p.Reloads) != 1 || p.Reloads[0].Timeout != 30*time.Second || strings.Join(p.Reloads[0].Reloader.(*testReloader).command, " ") != "systemctl reload payments" {
		t.Errorf("reloads = %+v", p.Reloads)
	}
	if p.Revoke != (Revoke{After: 2 * time.Hour, WaitUnused: true, Soak: Day}) {
		t.Errorf("revoke = %+v", p.Revoke)
	}

	p = cfg.Policies[1]
	if p.Schedule.Every != 0 || p.Schedule.CronExpr != "@daily" || p.Schedule.Cron == nil {
		t.Errorf("cron schedule = %+v", p.Schedule)
	}
	if next := p.Schedule.Cron.Next(time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)); !next.Equal(time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("@daily next = %v", next)
	}
	if got := p.Provider.Provider.Target(); got != "test:reports_ro" {
		t.Errorf("file() gave target %q, want the file's content without its newline", got)
	}
	if p.StepTimeout != DefaultStepTimeout || p.MaxFailures != DefaultMaxFailures || p.Revoke != (Revoke{After: time.Hour}) {
		t.Errorf("defaults = %v %v %+v", p.StepTimeout, p.MaxFailures, p.Revoke)
	}
	if p.Probes[0].Target != probes.TargetKey {
		t.Errorf("explicit target = %q", p.Probes[0].Target)
	}
	if len(p.Notify) != 2 || p.Notify[0].Kind != "test" || p.Notify[0].Notifier.(*testNotifier).url != "https://hooks.internal/rekey" ||
		strings.Join(p.Notify[0].On.Events(), ",") != "failure,stuck,success" ||
		strings.Join(p.Notify[1].On.Events(), ",") != strings.Join(notifiers.DefaultEvents, ",") {
		t.Errorf("notify = %+v", p.Notify)
	}

	p = cfg.Policies[2]
	if !p.RotateBlind || len(p.Probes) != 0 || p.Schedule.Every != 2*Week || p.Provider.Provider.Target() != "test:BLIND" {
		t.Errorf("blind policy = %+v", p)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	l := NewLoader()
	cfg, diags := l.LoadSources(map[string][]byte{"a.hcl": []byte(`
policy "p" {
  every = "1d"
  provider "test" { name = "p" }
  sink "test" { path = "/p" }
  probe "test" {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(render(t, l.Files(), diags))
	}
	if len(diags) != 0 {
		t.Errorf("unexpected warnings:\n%s", render(t, l.Files(), diags))
	}
	if cfg.StateDir != DefaultStateDir || cfg.Log != (LogSettings{"info", "auto"}) || cfg.Server != nil {
		t.Errorf("defaults = %q %+v %+v", cfg.StateDir, cfg.Log, cfg.Server)
	}
	p := cfg.Policies[0]
	if p.Revoke != (Revoke{After: time.Hour}) || p.StepTimeout != 2*time.Minute || p.MaxFailures != 5 || p.Schedule.Window != nil {
		t.Errorf("policy defaults = %+v", p)
	}
	if pb := p.Probes[0]; pb.Target != probes.TargetDependent || pb.Timeout != 2*time.Minute || pb.Interval != time.Second || pb.Successes != 1 {
		t.Errorf("probe defaults = %+v", pb)
	}
}

func TestEnvFunction(t *testing.T) {
	t.Parallel()
	l := &Loader{LookupEnv: func(n string) (string, bool) {
		if n == "EMPTY" {
			return "", true
		}
		return "", false
	}}
	_, diags := l.LoadSources(map[string][]byte{"a.hcl": []byte(`state_dir = env("EMPTY")`)})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "state_dir must not be empty") {
		t.Errorf("an empty variable should reach the setting's own check: %v", diags)
	}
	_, diags = l.LoadSources(map[string][]byte{"a.hcl": []byte(`state_dir = env("")`)})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "the variable name is empty") {
		t.Errorf("env(\"\"): %v", diags)
	}
}

func TestLoadPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pol := func(n string) string {
		return fmt.Sprintf("policy %q {\n  every = \"1d\"\n  provider \"test\" { name = %q }\n  sink \"test\" { path = %q }\n  probe \"test\" {}\n}\n", n, n, "/"+n)
	}
	write("b.hcl", pol("b"))
	write("a.hcl", pol("a"))
	write(".hidden.hcl", "this is not HCL {")
	write("notes.txt", "neither is this {")
	write("c.hcl.bak", "nor this {")
	extra := filepath.Join(t.TempDir(), "extra.conf")
	if err := os.WriteFile(extra, []byte(pol("z")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(dir, extra, filepath.Join(dir, "a.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "a,b,z" || len(cfg.Files) != 3 {
		t.Errorf("policies %v from %v", names, cfg.Files)
	}

	empty := t.TempDir()
	if _, diags := Load(empty); !diags.HasErrors() || diags[0].Summary != "No policy files" || strings.Contains(diags[0].Detail, "below it") {
		t.Errorf("empty directory: %v", diags)
	}
	// A directory of configuration directories (like examples/) names them.
	for i, sub := range []string{"one", "two"} {
		if err := os.MkdirAll(filepath.Join(empty, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(empty, sub, "p.hcl"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want := "did you mean " + filepath.Join(empty, "one") + "?"
		if i == 1 {
			want = "2 of its subdirectories hold *.hcl files (" + filepath.Join(empty, "one") + ", ...): name each configuration; rekey validate " + filepath.Join(empty, "*") + "/ checks them all."
		}
		if _, diags := (&Loader{skipHostChecks: true}).Load(empty); !diags.HasErrors() || !strings.Contains(diags[0].Detail, want) {
			t.Errorf("directory with %d configuration directories: %v, want %q", i+1, diags, want)
		}
	}
	if _, diags := Load(filepath.Join(empty, "missing")); !diags.HasErrors() || diags[0].Summary != "Cannot read configuration" {
		t.Errorf("missing path: %v", diags)
	}
	if _, diags := Load(); !diags.HasErrors() {
		t.Error("no path is no error")
	}
}

func TestTooManyDiagnostics(t *testing.T) {
	t.Parallel()
	l := NewLoader()
	_, diags := l.LoadSources(map[string][]byte{"junk.hcl": bytes.Repeat([]byte{0x1e}, 5000)})
	if len(diags) != MaxDiagnostics+1 || !diags.HasErrors() || diags[MaxDiagnostics].Summary != "Too many problems" {
		t.Errorf("%d diagnostics, last %q", len(diags), diags[len(diags)-1].Summary)
	}
}

// TestAllProblemsInOneRun: a file with five independent mistakes (an
// invalid policy name among them, and a cross-field rule) gets all five
// in one load (issue 10).
func TestAllProblemsInOneRun(t *testing.T) {
	t.Parallel()
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.Load("testdata/bad/five-mistakes.hcl")
	want := []string{"Invalid policy name", "Invalid max_age", "Invalid window", "Unknown sink kind", "Unsupported argument"}
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRotateCommandNamesTheConfiguration(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"", "rekey rotate pay"},
		{DefaultPath, "rekey rotate pay"},
		{"/srv/rekey", "rekey rotate -config /srv/rekey pay"},
		{"/srv/my rekey", "rekey rotate -config '/srv/my rekey' pay"},
		{"/srv/it's", `rekey rotate -config '/srv/it'\''s' pay`},
	} {
		if got := RotateCommand(tt.path, "pay"); got != tt.want {
			t.Errorf("RotateCommand(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestLoadRecordsTheAbsoluteConfigPath(t *testing.T) {
	dir := t.TempDir()
	src := "policy \"pay\" {\n  every = \"1d\"\n  provider \"test\" { name = \"pay\" }\n  sink \"test\" { path = \"/pay\" }\n  probe \"test\" {}\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "pay.hcl"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cfg, diags := Load(".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Policies) != 1 {
		t.Fatalf("%d policies", len(cfg.Policies))
	}
	for _, p := range cfg.Policies {
		if p.ConfigPath != dir {
			t.Errorf("%s: ConfigPath = %q, want %q", p.Name, p.ConfigPath, dir)
		}
		if got, want := p.RotateCommand(), "rekey rotate -config "+dir+" "+p.Name; got != want {
			t.Errorf("RotateCommand() = %q, want %q", got, want)
		}
	}
}
