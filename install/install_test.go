package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/policies"
)

func stage(t *testing.T, destdir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"install.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "DESTDIR="+destdir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInstallScript(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "rekey")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	stage(t, dest, "--prefix", "/opt/rekey", "--binary", bin)

	for path, want := range map[string]os.FileMode{
		"opt/rekey/bin/rekey":              0o755,
		"etc/systemd/system/rekey.service": 0o644,
		"etc/rekey/rekey.hcl":              0o640,
		"var/lib/rekey":                    0o700,
		"etc/rekey":                        0o755,
	} {
		if got := mode(t, filepath.Join(dest, path)); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/rekey.service"))
	if !strings.Contains(string(unit), "\nExecStart=/opt/rekey/bin/rekey run -config /etc/rekey\n") {
		t.Errorf("unit does not run the installed binary:\n%s", unit)
	}

	// A second run upgrades the binary and keeps the operator's config.
	cfg := filepath.Join(dest, "etc/rekey/rekey.hcl")
	if err := os.WriteFile(cfg, []byte("state_dir = \"/srv/rekey\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho v2\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	out := stage(t, dest, "--prefix=/opt/rekey", "--binary="+bin)
	if !strings.Contains(out, "kept the existing /etc/rekey/rekey.hcl") {
		t.Errorf("second run output:\n%s", out)
	}
	if got, _ := os.ReadFile(cfg); string(got) != "state_dir = \"/srv/rekey\"\n" {
		t.Errorf("config overwritten: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "opt/rekey/bin/rekey")); !strings.Contains(string(got), "v2") {
		t.Errorf("binary not upgraded: %q", got)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dest, "*/*/*/.rekey*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestInstallScriptRefusals(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--binary", filepath.Join(dest, "absent")}, "no rekey binary found"},
		{[]string{"--prefix", "relative", "--binary", "/bin/true"}, "absolute path"},
		{[]string{"--frobnicate"}, "unknown option"},
	} {
		cmd := exec.Command("sh", append([]string{"install.sh"}, tc.args...)...)
		cmd.Env = append(os.Environ(), "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("install.sh %v: err = %v, output %q, want failure saying %q", tc.args, err, out, tc.want)
		}
	}
}

// TestDefaultConfigLoads loads the packaged /etc/rekey/rekey.hcl with the
// real loader: valid, with only the "no policies" warning.
func TestDefaultConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, diags := policies.Load("rekey.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, d := range diags {
		if d.Summary != "No policies" {
			t.Errorf("unexpected diagnostic: %v", d)
		}
	}
	if cfg.StateDir != "/var/lib/rekey" {
		t.Errorf("state_dir = %q", cfg.StateDir)
	}
}

// TestShellcheck lints every shell script here. shellcheck is not part of
// the base machine: `apt-get install -y shellcheck` enables this test.
func TestShellcheck(t *testing.T) {
	t.Parallel()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed (apt-get install -y shellcheck)")
	}
	scripts, _ := filepath.Glob("scripts/*.sh")
	scripts = append(scripts, "install.sh", "build-packages.sh")
	out, err := exec.Command(sc, append([]string{"--shell=sh", "--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
