package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

const canary = "CANARY-file-sink-9d41e0b7a2"

var errCrash = errors.New("simulated crash")

func decode(t *testing.T, dir, src string) (*Sink, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "p", Kind: "file", BaseDir: dir, DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return newSink(env, f.Body)
}

func mustSink(t *testing.T, dir, src string) *Sink {
	t.Helper()
	s, diags := decode(t, dir, src)
	if diags.HasErrors() {
		t.Fatalf("decoding: %s", diags)
	}
	return s
}

func key(id string, kv ...string) plugin.Key {
	f := secret.Fields{}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = secret.New(kv[i+1])
	}
	return plugin.Key{ID: id, Value: f}
}

func rot(id string) plugin.Rotation { return plugin.Rotation{ID: id, Policy: "p"} }

// promote runs Current then Promote, as the engine does.
func promote(t *testing.T, s *Sink, r plugin.Rotation, k plugin.Key) (sinks.State, sinks.Version) {
	t.Helper()
	ctx := context.Background()
	prev, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := sinks.State{Prev: prev}
	staged, err := s.Stage(ctx, r, k, st)
	if err != nil || staged != "" {
		t.Fatalf("stage = %q, %v; want a no-op", staged, err)
	}
	v, err := s.Promote(ctx, r, k, st)
	if err != nil {
		t.Fatal(err)
	}
	st.Promoted = v
	return st, v
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cfg string
		key       plugin.Key
		want      string
	}{
		{"raw", `format = "raw"`, key("k", "token", "s3cr3t"), "s3cr3t"},
		{"raw with newline", "format = \"raw\"\nnewline = true", key("k", "token", "s3cr3t"), "s3cr3t\n"},
		{"json", `format = "json"`, key("k", "secret_access_key", `a"b\c<&>`, "access_key_id", "AKIA1"),
			"{\n  \"access_key_id\": \"AKIA1\",\n  \"secret_access_key\": \"a\\\"b\\\\c<&>\"\n}\n"},
		{"env", `format = "env"`, key("k", "DB_PASSWORD", `it's $HOME "x" \n`, "DB_USER", "app"),
			"DB_PASSWORD=\"it's \\$HOME \\\"x\\\" \\\\n\"\nDB_USER=\"app\"\n"},
		{"template", "format = \"template\"\ntemplate = \"[client]\\nuser = {{ .Fields.user }}\\npassword = {{ .Fields.password }}\\n# key {{ .KeyID }}\\n\"",
			key("app@1", "user", "app", "password", "pw"), "[client]\nuser = app\npassword = pw\n# key app@1\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := mustSink(t, dir, "path = \"secret.out\"\n"+c.cfg)
			if s.Location() != "file:"+filepath.Join(dir, "secret.out") {
				t.Fatalf("location %q", s.Location())
			}
			_, v := promote(t, s, rot("r1"), c.key)
			if v != "1" {
				t.Fatalf("version %q, want 1", v)
			}
			if got := read(t, filepath.Join(dir, "secret.out")); got != c.want {
				t.Fatalf("content:\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

func TestEnvFormatReadsBackInAShell(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh")
	}
	dir := t.TempDir()
	s := mustSink(t, dir, "path = \"app.env\"\nformat = \"env\"")
	nasty := `it's a "test" with $(rm -rf /) and ` + "`x`" + ` \ and 'quotes'`
	promote(t, s, rot("r1"), key("k", "NASTY", nasty, "PLAIN", "abc"))
	out, err := exec.Command("/bin/sh", "-c", `. "$1"; printf '%s|%s' "$NASTY" "$PLAIN"`, "sh", filepath.Join(dir, "app.env")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != nasty+"|abc" {
		t.Fatalf("the shell read %q", out)
	}
}

// TestEnvFormatReadsBackInSystemd parses the file with systemd's own
// environment file parser, through the environment.d generator, and reads
// its re-quoted output back with the shell. (environment.d expands $VAR,
// which EnvironmentFile= does not, so the value holds no dollar here.)
func TestEnvFormatReadsBackInSystemd(t *testing.T) {
	t.Parallel()
	gen := "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"
	if _, err := os.Stat(gen); err != nil {
		t.Skip("systemd's environment.d generator is not installed")
	}
	cfg := t.TempDir()
	dir := filepath.Join(cfg, "environment.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := mustSink(t, dir, "path = \"50-rekey.conf\"\nformat = \"env\"")
	value := `it's a "test" with ` + "`x`" + ` \ and \n, 'quotes' #no-comment ;x  `
	promote(t, s, rot("r1"), key("k", "REKEY_TEST_SYSTEMD", value))
	cmd := exec.Command(gen)
	cmd.Env = []string{"XDG_CONFIG_HOME=" + cfg, "HOME=" + cfg, "PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "REKEY_TEST_SYSTEMD=") {
			line = l
		}
	}
	got, err := exec.Command("/bin/sh", "-c", line+`; printf '%s' "$REKEY_TEST_SYSTEMD"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != value {
		t.Fatalf("systemd read %q, want %q", got, value)
	}
}

func TestRenderErrorsNameFieldsNotValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg  string
		key  plugin.Key
		want string
	}{
		{`format = "raw"`, key("k", "a", canary, "b", canary), "exactly one field"},
		{`format = "env"`, key("k", "api-token", canary), `"api-token" is not a valid variable name`},
		{`format = "env"`, key("k", "PEM", canary+"\nline2"), "line break"},
		{"format = \"template\"\ntemplate = \"{{ .Fields.missing }}\"", key("k", "token", canary), "rendering the template"},
		{"format = \"template\"\ntemplate = \"{{ index .Fields.token 99 }}\"", key("k", "token", canary), "rendering the template"},
		{`format = "json"`, plugin.Key{ID: "k"}, "no value"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		s := mustSink(t, dir, "path = \"out\"\n"+c.cfg)
		_, err := s.Promote(context.Background(), rot("r1"), c.key, sinks.State{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), canary) || !plugin.IsPermanent(err) {
			t.Errorf("%s: err = %v", c.cfg, err)
		}
		if names := entries(t, dir); len(names) != 0 {
			t.Errorf("%s: files written: %v", c.cfg, names)
		}
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustSink(t, dir, "path = \"default\"\nformat = \"raw\"")
	promote(t, s, rot("r1"), key("k", "v", "x"))
	if m := perm(t, filepath.Join(dir, "default")); m != 0o600 {
		t.Fatalf("default mode %o", m)
	}

	s, diags := decode(t, dir, "path = \"grp\"\nformat = \"raw\"\nmode = \"0640\"")
	if diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("0640 without group: want one warning, got %v", diags)
	}
	if _, diags := decode(t, dir, "path = \"grp\"\nformat = \"raw\"\nmode = \"0640\"\ngroup = \"0\""); len(diags) != 0 {
		t.Fatalf("0640 with group: want no warning, got %v", diags)
	}
	if _, diags := decode(t, dir, "path = \"grp\"\nformat = \"raw\"\nmode = \"0644\"\ngroup = \"0\""); diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("0644: want one warning, got %v", diags)
	}
	promote(t, s, rot("r1"), key("k", "v", "x"))
	if m := perm(t, filepath.Join(dir, "grp")); m != 0o640 {
		t.Fatalf("mode %o, want 640", m)
	}

	for _, bad := range []string{"0666", "0620", "0602", "0200", "rw-------", "01777", "0"} {
		if _, diags := decode(t, dir, "path = \"x\"\nformat = \"raw\"\n\nmode = \""+bad+"\""); !diags.HasErrors() || diags[0].Subject.Start.Line != 4 {
			t.Errorf("mode %q: want an error at line 4, got %v", bad, diags)
		}
	}
}

func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, summary string
		line         int
	}{
		{"path = \"x\"\nformat = \"yaml\"", "Invalid format", 2},
		{"path = \"x\"\nformat = \"template\"", "Missing template", 2},
		{"path = \"x\"\nformat = \"template\"\ntemplate = \"{{ .Fields.x \"", "Invalid template", 3},
		{"path = \"x\"\nformat = \"raw\"\ntemplate = \"x\"", "Template needs format = \"template\"", 3},
		{"path = \"x\"\nformat = \"json\"\nnewline = true", "Newline needs format = \"raw\"", 3},
		{"path = \"\"\nformat = \"raw\"", "Empty path", 1},
		{"path = \"x\"\nformat = \"raw\"\nowner = \"\"", "Empty owner", 3},
		{"format = \"raw\"", "Missing required argument", 1},
		{"path = \"x\"\nformat = \"raw\"\nfields = {}", "Unsupported argument", 3},
	}
	for _, c := range cases {
		s, diags := decode(t, t.TempDir(), c.src)
		if !diags.HasErrors() || s != nil {
			t.Errorf("%q: want an error, got %v", c.src, diags)
			continue
		}
		if d := diags[0]; d.Summary != c.summary || d.Subject == nil || d.Subject.Start.Line != c.line {
			t.Errorf("%q: %q at %v, want %q at line %d", c.src, d.Summary, d.Subject, c.summary, c.line)
		}
	}
	s, diags := decode(t, t.TempDir(), "path = \"x\"\nformat = \"raw\"\nowner = \"no-such-user-rekey\"")
	if len(diags) != 0 {
		t.Fatalf("unknown owner: want no diagnostic (resolved at write time), got %v", diags)
	}
	_, err := s.Promote(context.Background(), rot("r1"), key("k", "v", canary), sinks.State{})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "no-such-user-rekey") || strings.Contains(err.Error(), canary) {
		t.Fatalf("unknown owner at write time: %v", err)
	}
}

func TestVersionsAndSidecar(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "api-key")
	s := mustSink(t, dir, "path = \"api-key\"\nformat = \"raw\"")

	if v, err := s.Current(ctx); err != nil || v != "" {
		t.Fatalf("absent file: %q, %v", v, err)
	}
	if err := os.WriteFile(path, []byte("old-by-hand"), 0o600); err != nil {
		t.Fatal(err)
	}
	ext, err := s.Current(ctx)
	if err != nil || !strings.HasPrefix(string(ext), "external-") {
		t.Fatalf("file written by hand: %q, %v", ext, err)
	}
	_, v1 := promote(t, s, rot("r1"), key("k1", "v", canary))
	_, v2 := promote(t, s, rot("r2"), key("k2", "v", "second"))
	if v1 != "1" || v2 != "2" {
		t.Fatalf("versions %q %q", v1, v2)
	}
	if cur, _ := s.Current(ctx); cur != "2" {
		t.Fatalf("current %q", cur)
	}
	side := read(t, filepath.Join(dir, ".api-key.rekey-state"))
	var st map[string]any
	if err := json.Unmarshal([]byte(side), &st); err != nil {
		t.Fatal(err)
	}
	if st["rotation_id"] != "r2" || st["version"] != "2" || st["prev_version"] != "1" || st["written_at"] == nil {
		t.Fatalf("sidecar: %s", side)
	}
	if strings.Contains(side, canary) || strings.Contains(side, "second") {
		t.Fatal("the sidecar holds a secret")
	}
	if got := read(t, filepath.Join(dir, ".api-key.rekey-prev")); got != canary {
		t.Fatalf("prev copy %q", got)
	}
	for _, name := range []string{".api-key.rekey-prev", ".api-key.rekey-state"} {
		if m := perm(t, filepath.Join(dir, name)); m != 0o600 {
			t.Errorf("%s has mode %o", name, m)
		}
	}
	names := entries(t, dir)
	if strings.Join(names, " ") != ".api-key.rekey-prev .api-key.rekey-state api-key" {
		t.Fatalf("directory holds %v", names)
	}
}

func TestPromoteConflictWhenChangedOutsideRekey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	promote(t, s, rot("r1"), key("k1", "v", "first"))

	prev, _ := s.Current(ctx)
	if err := os.WriteFile(path, []byte("someone-else"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Promote(ctx, rot("r2"), key("k2", "v", canary), sinks.State{Prev: prev})
	if !errors.Is(err, plugin.ErrConflict) || !plugin.IsPermanent(err) || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	if got := read(t, path); got != "someone-else" {
		t.Fatalf("the other writer's content was overwritten: %q", got)
	}

	// Same size, rewritten in place: still detected.
	s2 := mustSink(t, dir, "path = \"k2\"\nformat = \"raw\"")
	promote(t, s2, rot("r1"), key("k1", "v", "aaaa"))
	prev, _ = s2.Current(ctx)
	f, err := os.OpenFile(filepath.Join(dir, "k2"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("bbbb"), 0)
	f.Close()
	if _, err := s2.Promote(ctx, rot("r2"), key("k2", "v", "cccc"), sinks.State{Prev: prev}); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("in-place rewrite: err = %v", err)
	}

	// A file appearing where there was none.
	s3 := mustSink(t, dir, "path = \"k3\"\nformat = \"raw\"")
	prev, _ = s3.Current(ctx)
	os.WriteFile(filepath.Join(dir, "k3"), []byte("x"), 0o600)
	if _, err := s3.Promote(ctx, rot("r1"), key("k1", "v", "y"), sinks.State{Prev: prev}); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("new file: err = %v", err)
	}
}

func TestPromoteIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	os.WriteFile(path, []byte("original"), 0o600)
	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	st, v := promote(t, s, rot("r1"), key("k1", "v", "new"))
	again, err := s.Promote(ctx, rot("r1"), key("k1", "v", "new"), st)
	if err != nil || again != v {
		t.Fatalf("second promote: %q, %v; want %q", again, err, v)
	}
	if read(t, filepath.Join(dir, ".k.rekey-prev")) != "original" {
		t.Fatal("the second promote overwrote the prev copy")
	}
	// The same rotation with another value is not the same write.
	if _, err := s.Promote(ctx, rot("r1"), key("k1", "v", "other"), st); err == nil {
		t.Fatal("promote with a different value of the same rotation succeeded")
	}
}

func TestRollbackRestoresExactBytesAndMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "creds.json")
	original := "{\"k\": \"original\"}\x00\xff no newline"
	os.WriteFile(path, []byte(original), 0o400)
	os.Chmod(path, 0o400)
	s := mustSink(t, dir, "path = \"creds.json\"\nformat = \"json\"")
	st, _ := promote(t, s, rot("r1"), key("k1", "v", canary))
	if m := perm(t, path); m != 0o600 {
		t.Fatalf("mode after promote %o", m)
	}
	if err := s.Rollback(ctx, rot("r1"), st); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != original {
		t.Fatalf("restored %q", got)
	}
	if m := perm(t, path); m != 0o400 {
		t.Fatalf("restored mode %o, want 400", m)
	}
	if v, _ := s.Current(ctx); v != st.Prev {
		t.Fatalf("current after rollback %q, want %q", v, st.Prev)
	}
	if err := s.Rollback(ctx, rot("r1"), st); err != nil {
		t.Fatalf("second rollback: %v", err)
	}
	if got := read(t, path); got != original {
		t.Fatal("second rollback changed the file")
	}
	// The next rotation starts from the restored file.
	_, v := promote(t, s, rot("r2"), key("k2", "v", "next"))
	if v != "2" {
		t.Fatalf("next version %q", v)
	}
	for _, n := range entries(t, dir) {
		if strings.Contains(n, "tmp") {
			t.Fatalf("temporary file left: %s", n)
		}
	}
}

func TestRollbackRemovesAFileThatDidNotExist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	st, _ := promote(t, s, rot("r1"), key("k1", "v", "x"))
	if err := s.Rollback(ctx, rot("r1"), sinks.State{Prev: st.Prev}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	if v, _ := s.Current(ctx); v != "" {
		t.Fatalf("current %q", v)
	}
	if err := s.Rollback(ctx, rot("r1"), st); err != nil {
		t.Fatal(err)
	}
}

func TestRollbackOfNothingIsANoOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	os.WriteFile(path, []byte("untouched"), 0o600)
	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	prev, _ := s.Current(ctx)
	if err := s.Rollback(ctx, rot("r1"), sinks.State{Prev: prev}); err != nil {
		t.Fatal(err)
	}
	promote(t, s, rot("r1"), key("k1", "v", "first"))
	// A rotation that never wrote leaves r1's write alone.
	if err := s.Rollback(ctx, rot("r2"), sinks.State{Prev: "1"}); err != nil {
		t.Fatal(err)
	}
	if read(t, path) != "first" {
		t.Fatal("rollback of another rotation changed the file")
	}
}

func TestRollbackConflictWhenChangedAfterPromote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	os.WriteFile(path, []byte("original"), 0o600)
	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	st, _ := promote(t, s, rot("r1"), key("k1", "v", canary))
	os.WriteFile(path, []byte("hand-edited"), 0o600)
	err := s.Rollback(ctx, rot("r1"), st)
	if !errors.Is(err, plugin.ErrConflict) || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	if read(t, path) != "hand-edited" {
		t.Fatal("rollback overwrote another writer")
	}
}

func TestCrashes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, point := range []string{"after-prev-copy", "before-rename", "after-rename"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "k")
			os.WriteFile(path, []byte("original"), 0o640)
			os.Chmod(path, 0o640)
			cfg := "path = \"k\"\nformat = \"raw\""
			crashing := mustSink(t, dir, cfg)
			crashing.failpoint = func(p string) error {
				if p == point {
					return errCrash
				}
				return nil
			}
			prev, _ := crashing.Current(ctx)
			if _, err := crashing.Promote(ctx, rot("r1"), key("k1", "v", "new"), sinks.State{Prev: prev}); !errors.Is(err, errCrash) {
				t.Fatalf("err = %v", err)
			}

			// Restarted: roll back with only what the journal knew.
			s := mustSink(t, dir, cfg)
			if err := s.Rollback(ctx, rot("r1"), sinks.State{Prev: prev}); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != "original" {
				t.Fatalf("content after rollback %q", got)
			}
			if m := perm(t, path); m != 0o640 {
				t.Fatalf("mode after rollback %o", m)
			}
			if v, _ := s.Current(ctx); v != prev {
				t.Fatalf("version after rollback %q, want %q", v, prev)
			}
			for _, n := range entries(t, dir) {
				if strings.Contains(n, "tmp") {
					t.Fatalf("temporary file left: %s", n)
				}
			}

			// Or retried: the promote completes once.
			crashing.failpoint = func(p string) error {
				if p == point {
					return errCrash
				}
				return nil
			}
			crashing.Promote(ctx, rot("r3"), key("k3", "v", "third"), sinks.State{Prev: prev})
			v, err := s.Promote(ctx, rot("r3"), key("k3", "v", "third"), sinks.State{Prev: prev})
			if err != nil {
				t.Fatal(err)
			}
			if cur, _ := s.Current(ctx); cur != v || read(t, path) != "third" || read(t, filepath.Join(dir, ".k.rekey-prev")) != "original" {
				t.Fatalf("after retry: version %q/%q, content %q", cur, v, read(t, path))
			}
		})
	}
}

func TestRollbackCrashMidRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	os.WriteFile(path, []byte("original"), 0o600)
	cfg := "path = \"k\"\nformat = \"raw\""
	s := mustSink(t, dir, cfg)
	st, _ := promote(t, s, rot("r1"), key("k1", "v", "new"))
	s.failpoint = func(p string) error {
		if p == "before-restore-rename" {
			return errCrash
		}
		return nil
	}
	if err := s.Rollback(ctx, rot("r1"), st); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	if v, _ := s.Current(ctx); v != st.Promoted {
		t.Fatalf("mid-rollback current %q, want %q", v, st.Promoted)
	}
	s = mustSink(t, dir, cfg)
	if err := s.Rollback(ctx, rot("r1"), st); err != nil {
		t.Fatal(err)
	}
	if read(t, path) != "original" {
		t.Fatal("not restored")
	}
}

func TestRefusesSymlinks(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600)
	os.Symlink("real", filepath.Join(dir, "link"))
	s := mustSink(t, dir, "path = \"link\"\nformat = \"raw\"")
	if _, err := s.Current(context.Background()); err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustSink(t, dir, "path = \"nope/k\"\nformat = \"raw\"")
	_, err := s.Promote(context.Background(), rot("r1"), key("k", "v", canary), sinks.State{})
	if err == nil || !strings.Contains(err.Error(), "does not exist; create it") || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v", err)
	}
}

// TestLeftoverTemporaryFilesAreRemoved: temporary files a crash left (each
// holds a key, owner-only) are removed at the next write: the fixed ones of
// this version, and random-named ones of earlier versions (looked for once
// per directory and process). A symbolic link planted at a temporary
// file's name is removed, never written through.
func TestLeftoverTemporaryFilesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	s := mustSink(t, dir, "path = \"k\"\nformat = \"env\"")
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	planted := []string{".k.rekey-value.tmp", ".k.rekey-prev.tmp", ".k.rekey-tmp-123456", ".other.rekey-tmp-9"}
	for _, n := range planted {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(canary), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, ".k.rekey-state.tmp")); err != nil {
		t.Fatal(err)
	}
	legacyScanned.Delete(dir)
	promote(t, s, rot("r1"), key("k1", "value", "v1"))
	for _, n := range entries(t, dir) {
		if strings.Contains(n, "tmp") {
			t.Errorf("temporary file left after a write: %s", n)
		}
	}
	if got := read(t, outside); got != "untouched" {
		t.Errorf("a write followed the planted link: %q", got)
	}
	if got := read(t, filepath.Join(dir, "k")); !strings.Contains(got, "v1") {
		t.Errorf("location holds %q", got)
	}
}
