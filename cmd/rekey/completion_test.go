package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// completionEnv writes a rekey command for the shells (this test binary as
// rekey) and a configuration with two policies, and returns the directory
// to put first in PATH and the configuration's path.
func completionEnv(t *testing.T) (bin, cfg string) {
	t.Helper()
	bin = t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "rekey")); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(t.TempDir(), "rekey.hcl")
	var b strings.Builder
	for _, name := range []string{"payments", "reports"} {
		b.WriteString(`policy "` + name + `" {
  every        = "30d"
  rotate_blind = true
  provider "random" {
    bytes = 16
  }
  sink "file" {
    path   = "` + name + `.key"
    format = "raw"
  }
}
`)
	}
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return bin, cfg
}

func TestCompleteCandidates(t *testing.T) {
	_, cfg := completionEnv(t)
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ro"}, []string{"rotate"}},
		{[]string{"rotate", "-config", cfg, ""}, []string{"payments", "reports"}},
		{[]string{"rotate", "-config=" + cfg, "p"}, []string{"payments"}},
		{[]string{"plan", "r", "-config", cfg, "re"}, []string{"reports"}},
		{[]string{"rotate", "-d"}, []string{"-dry-run"}},
		{[]string{"rotate", "-config", ""}, []string{filesDirective}},
		{[]string{"validate", ""}, []string{filesDirective}},
		{[]string{"service", "-root", "x", "st"}, []string{"start", "stop", "status"}},
		{[]string{"service", "status", "-r"}, []string{"-root"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"help", "se"}, []string{"service"}},
		{[]string{"--ver"}, []string{"--version"}},
	} {
		out, _, code := run(t, append([]string{completeCommand}, tc.words...)...)
		got := strings.Fields(out)
		if code != ExitOK || !slices.Equal(got, tc.want) {
			t.Errorf("complete %q: %d %q, want %q", tc.words, code, got, tc.want)
		}
	}
}

// TestCompletionBash loads the bash script into a real bash and completes
// as the shell would.
func TestCompletionBash(t *testing.T) {
	bash := requireShell(t, "bash")
	bin, cfg := completionEnv(t)
	script, _, _ := run(t, "completion", "bash")
	for _, tc := range []struct {
		line string
		want string
	}{
		{"rekey ro", "rotate"},
		{"rekey rotate -config " + cfg + " ", "payments reports"},
		{"rekey status --js", "--json"},
		{"rekey status -js", "-json"},
	} {
		words := strings.Split(tc.line, " ")
		prog := script + `
COMP_WORDS=(` + shellQuote(words) + `)
COMP_CWORD=` + strconv.Itoa(len(words)-1) + `
_rekey
echo "${COMPREPLY[*]}"
`
		cmd := exec.Command(bash, "--norc", "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "REKEY_TEST_BE_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("bash completion of %q: %v %q, want %q", tc.line, err, out, tc.want)
		}
	}
}

// TestCompletionFish completes through a real fish (complete -C).
func TestCompletionFish(t *testing.T) {
	fish := requireShell(t, "fish")
	bin, cfg := completionEnv(t)
	script, _, _ := run(t, "completion", "fish")
	f := filepath.Join(t.TempDir(), "rekey.fish")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"rekey ro":                           "rotate",
		"rekey plan -config " + cfg + " rep": "reports",
		"rekey completion z":                 "zsh",
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source "+f+"; complete -C '"+line+"'")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "REKEY_TEST_BE_MAIN=1", "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("fish completion of %q: %v %q, want %q", line, err, out, want)
		}
	}
}

// TestCompletionZsh checks that the zsh script parses and defines _rekey
// (driving zsh's completion system needs a terminal).
func TestCompletionZsh(t *testing.T) {
	zsh := requireShell(t, "zsh")
	bin, cfg := completionEnv(t)
	script, _, _ := run(t, "completion", "zsh")
	f := filepath.Join(t.TempDir(), "_rekey")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	// compadd only works inside a completion widget: stand in for it to
	// see what _rekey would offer.
	prog := `compdef() { :; }; compadd() { shift; print -l -- "${(@P)1}"; }; _files() { print FILES; }
source ` + f + `
words=(rekey rotate -config ` + cfg + ` p); CURRENT=5; _rekey`
	cmd := exec.Command(zsh, "-f", "-c", prog)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "REKEY_TEST_BE_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "payments" {
		t.Fatalf("zsh _rekey: %v %q", err, out)
	}
}

func requireShell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s is required (REKEY_TEST_REQUIRE_SERVERS=1; testenv/test-all.sh installs it): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

func shellQuote(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
