package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/NAME.golden (after replacing dir with
// $DIR), or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsage(t *testing.T) {
	out, _, code := run(t, "help")
	if code != ExitOK {
		t.Fatalf("help exited %d", code)
	}
	golden(t, "usage", out)
	_, errOut, code := run(t, "frobnicate")
	if code != ExitConfig || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %s", code, errOut)
	}
}

// TestStrayArguments: rekey help -h prints the overview; status refuses
// arguments it does not take, and names -config for a configuration
// directory.
func TestStrayArguments(t *testing.T) {
	out, _, code := run(t, "help", "-h")
	if code != ExitOK || !strings.Contains(out, "Usage: rekey COMMAND") {
		t.Fatalf("help -h: %d\n%s", code, out)
	}
	_, errOut, code := run(t, "status", "-config", "../../examples/quickstart", "bogus")
	if code != ExitConfig || !strings.Contains(errOut, `unexpected argument "bogus"`) {
		t.Fatalf("status with a stray argument: %d %s", code, errOut)
	}
	_, errOut, code = run(t, "status", "../../examples/quickstart")
	if code != ExitConfig || !strings.Contains(errOut, "did you mean -config ../../examples/quickstart?") {
		t.Fatalf("status with a configuration directory as argument: %d %s", code, errOut)
	}
	_, errOut, code = run(t, "plan", "../../examples/quickstart")
	if code != ExitConfig || !strings.Contains(errOut, "did you mean -config ../../examples/quickstart?") {
		t.Fatalf("plan with a configuration directory as argument: %d %s", code, errOut)
	}
}

func TestValidateGolden(t *testing.T) {
	out, _, code := run(t, "validate", "testdata/bad.hcl")
	if code != ExitConfig {
		t.Fatalf("validate of an invalid file exited %d", code)
	}
	golden(t, "validate-bad", out)
	out, _, code = run(t, "validate", "-json", "testdata/bad.hcl")
	if code != ExitConfig {
		t.Fatalf("validate -json exited %d", code)
	}
	golden(t, "validate-bad-json", out)
	out, _, code = run(t, "validate", filepath.Join("..", "..", "examples", "quickstart"))
	if code != ExitOK || !strings.Contains(out, "Valid: 1 policy in") {
		t.Fatalf("validate quickstart: %d %s", code, out)
	}
}

func TestFmt(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("testdata/unformatted.hcl")
	f := filepath.Join(dir, "p.hcl")
	os.WriteFile(f, src, 0o644)
	out, _, code := run(t, "fmt", "-check", dir)
	if code != ExitConfig || !strings.Contains(out, f) {
		t.Fatalf("fmt -check: %d %q", code, out)
	}
	if b, _ := os.ReadFile(f); !bytes.Equal(b, src) {
		t.Fatal("fmt -check changed the file")
	}
	if _, _, code := run(t, "fmt", "-write", dir); code != ExitOK {
		t.Fatalf("fmt -write exited %d", code)
	}
	b, _ := os.ReadFile(f)
	golden(t, "fmt-written", string(b))
	if out, _, code := run(t, "fmt", "-check", dir); code != ExitOK || out != "" {
		t.Fatalf("fmt -check after -write: %d %q", code, out)
	}
}

// copyQuickstart copies the quickstart example into a temp dir.
func copyQuickstart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "examples", "quickstart")
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(dir, e.Name()), b, 0o755)
	}
	return dir
}

func TestPlanAndStatusGolden(t *testing.T) {
	dir := copyQuickstart(t)
	norm := func(s string) string { return strings.ReplaceAll(s, dir, "$DIR") }
	out, errOut, code := run(t, "plan", "-config", dir)
	if code != ExitOK {
		t.Fatalf("plan exited %d: %s", code, errOut)
	}
	golden(t, "plan-quickstart", norm(out))
	out, _, code = run(t, "rotate", "-dry-run", "-config", dir, "quickstart")
	if code != ExitOK || norm(out) != mustRead(t, "testdata/plan-quickstart.golden") {
		t.Fatalf("rotate -dry-run should print the plan: %d\n%s", code, out)
	}
	out, _, code = run(t, "status", "-config", dir)
	if code != ExitOK {
		t.Fatalf("status exited %d", code)
	}
	golden(t, "status-never", norm(out))
	if _, err := os.Stat(filepath.Join(dir, "state", "rekey", "journal.db")); err == nil {
		t.Fatal("status or plan created a journal")
	}

	out, _, code = run(t, "rotate", "-config", dir, "quickstart")
	// The first rotation has no old key to revoke: it finishes at once.
	if code != ExitOK || !strings.Contains(out, "quickstart: done") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	// The step lines have times and masked ids; normalise them.
	steps := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  `).ReplaceAllString(out, "")
	steps = regexp.MustCompile(`\d+(\.\d+)?(ms|µs|s)\b`).ReplaceAllString(steps, "D")
	steps = regexp.MustCompile(`\*+[0-9a-f]{4}`).ReplaceAllString(steps, "KEY")
	steps = regexp.MustCompile(`next check \S+`).ReplaceAllString(steps, "next check T")
	golden(t, "rotate-quickstart", steps)

	out, _, code = run(t, "status", "-config", dir)
	if code != ExitOK {
		t.Fatalf("status exited %d", code)
	}
	out = regexp.MustCompile(`\*+[0-9a-f]{4}`).ReplaceAllString(out, "KEY")
	out = regexp.MustCompile(`\b\d+(s|m\d\ds)\b`).ReplaceAllString(out, "D")
	golden(t, "status-after-rotate", out)
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != ExitOK || !regexp.MustCompile(`^rekey dev \(go1\.\d+`).MatchString(out) {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestRotateUsageErrors(t *testing.T) {
	if _, errOut, code := run(t, "rotate", "-config", "testdata/bad.hcl"); code != ExitConfig || !strings.Contains(errOut, "name one or more policies, or -all") {
		t.Fatalf("rotate without names: %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "rotate", "-config", "testdata/bad.hcl", "payments"); code != ExitConfig || !strings.Contains(errOut, "bad.hcl:4") {
		t.Fatalf("rotate with an invalid config should show the diagnostics: %d %s", code, errOut)
	}
}

// TestParseInterspersed: options before, between and after the arguments;
// "--" ends them.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		json bool
		cfg  string
		pos  []string
	}{
		{[]string{"a", "b"}, false, "x", []string{"a", "b"}},
		{[]string{"-json", "a", "b"}, true, "x", []string{"a", "b"}},
		{[]string{"a", "-json", "b", "-config", "c"}, true, "c", []string{"a", "b"}},
		{[]string{"a", "--config=c", "b", "--json"}, true, "c", []string{"a", "b"}},
		{[]string{"a", "--", "-json", "b"}, false, "x", []string{"a", "-json", "b"}},
		{[]string{"-", "a"}, false, "x", []string{"-", "a"}},
	} {
		a := &app{stdout: io.Discard, stderr: io.Discard}
		fs := a.flags("validate")
		j := fs.Bool("json", false, "")
		c := fs.String("config", "x", "")
		if ok, _ := parse(fs, tc.args); !ok || *j != tc.json || *c != tc.cfg || !slices.Equal(fs.Args(), tc.pos) {
			t.Errorf("parse(%q) = ok %v json %v config %q args %q; want json %v config %q args %q", tc.args, ok, *j, *c, fs.Args(), tc.json, tc.cfg, tc.pos)
		}
	}
	a := &app{stdout: io.Discard, stderr: io.Discard}
	fs := a.flags("validate")
	if ok, code := parse(fs, []string{"a", "-nope"}); ok || code != ExitConfig {
		t.Errorf("an unknown option after an argument: ok %v code %d", ok, code)
	}
}

// TestStatusAndPlanMidRotation: taken at the same moment, with a rotation
// parked in its drain, status and plan tell the same story: the rotation in
// flight, what remains of it (not the steps of a new rotation), and when
// it goes on (issue 10 §5). Goldens keep the operator's view stable.
func TestStatusAndPlanMidRotation(t *testing.T) {
	dir := copyQuickstart(t)
	cfg := filepath.Join(dir, "rekey.hcl")
	b := mustRead(t, cfg)
	if !strings.Contains(b, `after = "10s"`) {
		t.Fatal("the quickstart's revoke block changed; update this test")
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(b, `after = "10s"`, `after = "1h"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"quickstart: done", "quickstart: committed"} {
		if out, errOut, code := run(t, "rotate", "-config", dir, "quickstart"); code != ExitOK || !strings.Contains(out, want) {
			t.Fatalf("rotation %d: %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	status, _, code := run(t, "status", "-config", dir)
	if code != ExitOK {
		t.Fatalf("status exited %d", code)
	}
	plan, _, code := run(t, "plan", "-config", dir)
	if code != ExitOK {
		t.Fatalf("plan exited %d", code)
	}
	if !regexp.MustCompile(`(?m)^quickstart .* drain \(revoke \*+[0-9a-f]{4} in 5\dm\d+s\)$`).MatchString(status) {
		t.Errorf("status does not show the rotation in its drain:\n%s", status)
	}
	if !strings.Contains(plan, "IN FLIGHT, remaining steps") || strings.Contains(plan, "create a new key") || !strings.Contains(plan, "1. drain: wait 1h0m0s after commit") {
		t.Errorf("plan does not show what remains of the rotation in flight:\n%s", plan)
	}
	norm := func(s string) string {
		s = strings.ReplaceAll(s, dir, "$DIR")
		s = regexp.MustCompile(`\*+[0-9a-f]{4}`).ReplaceAllString(s, "KEY")
		s = regexp.MustCompile(`\b\d+s\b|\b\d+m\d+s\b`).ReplaceAllString(s, "D")
		s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "TIME")
		s = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllString(s, "ROTATION")
		return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
	}
	golden(t, "status-mid-rotation", norm(status))
	golden(t, "plan-mid-rotation", norm(plan))
}

// TestEveryCommandHasHelp: -h of every command, and of journal recover,
// prints its synopsis and its summary (service has a longer help of its
// own).
func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands {
		args := []string{c.name, "-h"}
		if c.name == "journal" {
			args = []string{"journal", "recover", "-h"}
		}
		if c.name == "journal" {
			out, _, code := run(t, "help", "journal")
			if code != ExitOK || !strings.Contains(out, "-yes") {
				t.Errorf("rekey help journal: exit %d\n%s", code, out)
			}
			_, errOut, code := run(t, "journal", "frob")
			if code != ExitConfig || !strings.Contains(errOut, `unknown subcommand "frob"`) {
				t.Errorf("rekey journal frob: exit %d\n%s", code, errOut)
			}
		}
		out, _, code := run(t, args...)
		want := strings.TrimSpace("Usage: rekey "+c.name+" "+c.args) + "\n\n" + c.summary + "."
		if c.name == "service" {
			want = "Usage: rekey service ACTION [options]\n\nManage rekey as a system service" // a help of its own
		}
		if code != ExitOK || !strings.HasPrefix(out, want) || c.summary == "" {
			t.Errorf("rekey %s: exit %d\n%s\nwant it to start with:\n%s", strings.Join(args, " "), code, out, want)
		}
	}
}
