//go:build linux

package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/install"
)

// requireSystemctl returns the path of systemctl, or skips the test when it
// is absent; with REKEY_TEST_REQUIRE_SERVERS=1 (CI) it fails instead.
func requireSystemctl(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s is required (REKEY_TEST_REQUIRE_SERVERS=1): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// isEnabled asks systemctl, offline below root, whether rekey.service is
// enabled.
func isEnabled(t *testing.T, root string) string {
	t.Helper()
	out, _ := exec.Command(requireSystemctl(t, "systemctl"), "--root="+root, "is-enabled", "rekey.service").CombinedOutput()
	return strings.TrimSpace(string(out))
}

func readUnit(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/rekey.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServiceInstallLifecycle(t *testing.T) {
	t.Parallel()
	requireSystemctl(t, "systemctl")
	root := t.TempDir()
	exe := testExecutable(t)
	unitPath := filepath.Join(root, "etc/systemd/system/rekey.service")

	out, errOut, code := run(t, "service", "install", "-root", root, "-config", "/etc/rekey", "-binary", exe)
	if code != ExitOK {
		t.Fatalf("install exited %d:\n%s%s", code, out, errOut)
	}
	want := strings.Replace(install.SystemdUnit,
		"\nExecStart=/usr/bin/rekey run -config /etc/rekey\n",
		"\nExecStart="+exe+" run -config /etc/rekey\n", 1)
	if want == install.SystemdUnit {
		t.Fatal("the shipped unit has no ExecStart=/usr/bin/rekey run -config /etc/rekey line")
	}
	if got := readUnit(t, root); got != want {
		t.Fatalf("installed unit is not install/rekey.service with this binary's ExecStart:\n%s", got)
	}
	if st, err := os.Stat(unitPath); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("unit file mode: %v %v", st.Mode(), err)
	}
	if s := isEnabled(t, root); s != "enabled" {
		t.Fatalf("systemctl is-enabled after install: %q", s)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/rekey.service")); err != nil {
		t.Fatalf("install did not enable the unit for multi-user.target: %v", err)
	}

	out, _, code = run(t, "service", "status", "-root", root)
	if code != ExitRuntime || !strings.HasPrefix(out, "stopped\n") || !strings.Contains(out, unitPath+" (enabled)") {
		t.Fatalf("status after install: %d\n%s", code, out)
	}

	out, errOut, code = run(t, "service", "install", "-root", root, "-config", "/etc/rekey", "-binary", exe)
	if code != ExitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("installing the same unit again: %d\n%s%s", code, out, errOut)
	}

	_, errOut, code = run(t, "service", "install", "-root", root, "-config", "/srv/other", "-binary", exe)
	if code != ExitConfig || !strings.Contains(errOut, "differs") || !strings.Contains(errOut, "-force") || !strings.Contains(errOut, "/srv/other") {
		t.Fatalf("install over a different unit without -force: %d\n%s", code, errOut)
	}
	if got := readUnit(t, root); got != want {
		t.Fatal("a refused install changed the unit")
	}

	out, errOut, code = run(t, "service", "install", "-root", root, "-config", "/srv/other", "-force", "-binary", exe)
	if code != ExitOK {
		t.Fatalf("install -force: %d\n%s%s", code, out, errOut)
	}
	if got := readUnit(t, root); !strings.Contains(got, "\nExecStart="+exe+" run -config /srv/other\n") {
		t.Fatalf("install -force did not replace the unit:\n%s", got)
	}

	for _, action := range []string{"start", "stop", "restart"} {
		out, errOut, code = run(t, "service", action, "-root", root)
		if code != ExitOK || !strings.Contains(out, "not running `systemctl "+action+" rekey.service`") {
			t.Fatalf("%s with -root: %d\n%s%s", action, code, out, errOut)
		}
	}

	out, errOut, code = run(t, "service", "uninstall", "-root", root)
	if code != ExitOK {
		t.Fatalf("uninstall: %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(unitPath); !os.IsNotExist(err) {
		t.Fatalf("uninstall left the unit: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/rekey.service")); !os.IsNotExist(err) {
		t.Fatalf("uninstall did not disable the unit: %v", err)
	}
	if s := isEnabled(t, root); s == "enabled" {
		t.Fatalf("systemctl is-enabled after uninstall: %q", s)
	}

	out, _, code = run(t, "service", "status", "-root", root)
	if code != ExitRuntime || out != "not installed\n" {
		t.Fatalf("status after uninstall: %d %q", code, out)
	}
	out, _, code = run(t, "service", "uninstall", "-root", root)
	if code != ExitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second uninstall: %d %q", code, out)
	}
	for _, action := range []string{"start", "stop", "restart"} {
		_, errOut, code = run(t, "service", action, "-root", root)
		if code != ExitRuntime || !strings.Contains(errOut, "not installed") {
			t.Fatalf("%s when not installed: %d %q", action, code, errOut)
		}
	}
}

func TestServiceInstallQuotesPaths(t *testing.T) {
	t.Parallel()
	sa := requireSystemctl(t, "systemd-analyze")
	requireSystemctl(t, "systemctl")
	root := t.TempDir()
	cfg := `/srv/rekey conf/50%$HOME"\`
	out, errOut, code := run(t, "service", "install", "-root", root, "-config", cfg, "-binary", testExecutable(t))
	if code != ExitOK {
		t.Fatalf("install: %d\n%s%s", code, out, errOut)
	}
	unit := readUnit(t, root)
	line := "\nExecStart=" + testExecutable(t) + ` run -config "/srv/rekey conf/50%%$$HOME\"\\"` + "\n"
	if !strings.Contains(unit, line) {
		t.Fatalf("ExecStart not quoted for systemd:\n%s", unit)
	}
	cmd := exec.Command(sa, "verify", filepath.Join(root, "etc/systemd/system/rekey.service"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(b))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, b)
	}
}

func TestServiceRelativeConfigBecomesAbsolute(t *testing.T) {
	t.Parallel()
	requireSystemctl(t, "systemctl")
	root := t.TempDir()
	if _, errOut, code := run(t, "service", "install", "-root", root, "-config", "testdata", "-binary", testExecutable(t)); code != ExitOK {
		t.Fatalf("install: %d %s", code, errOut)
	}
	abs, _ := filepath.Abs("testdata")
	if unit := readUnit(t, root); !strings.Contains(unit, " run -config "+abs+"\n") {
		t.Fatalf("ExecStart does not name %s:\n%s", abs, unit)
	}
}

func TestServiceRootFromEnvironment(t *testing.T) {
	requireSystemctl(t, "systemctl")
	root := t.TempDir()
	t.Setenv("REKEY_SERVICE_ROOT", root)
	t.Setenv("REKEY_CONFIG", "/opt/rekey/conf")
	if _, errOut, code := run(t, "service", "install", "-binary", testExecutable(t)); code != ExitOK {
		t.Fatalf("install: %d %s", code, errOut)
	}
	if unit := readUnit(t, root); !strings.Contains(unit, " run -config /opt/rekey/conf\n") {
		t.Fatalf("REKEY_CONFIG not used:\n%s", unit)
	}
	if s := isEnabled(t, root); s != "enabled" {
		t.Fatalf("is-enabled: %q", s)
	}
}

func TestServicePackagedUnit(t *testing.T) {
	t.Parallel()
	requireSystemctl(t, "systemctl")
	root := t.TempDir()
	pkg := filepath.Join(root, "lib/systemd/system/rekey.service")
	if err := os.MkdirAll(filepath.Dir(pkg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pkg, []byte(install.SystemdUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := run(t, "service", "status", "-root", root)
	if code != ExitRuntime || !strings.HasPrefix(out, "stopped\n") || !strings.Contains(out, pkg) {
		t.Fatalf("status of a packaged unit: %d\n%s", code, out)
	}
	_, errOut, code := run(t, "service", "uninstall", "-root", root)
	if code != ExitConfig || !strings.Contains(errOut, "package") {
		t.Fatalf("uninstall of a packaged unit: %d %s", code, errOut)
	}
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("uninstall touched the packaged unit: %v", err)
	}
	out, errOut, code = run(t, "service", "install", "-root", root, "-binary", testExecutable(t))
	if code != ExitOK || !strings.Contains(out, "overrides the packaged "+pkg) {
		t.Fatalf("install over a packaged unit: %d\n%s%s", code, out, errOut)
	}
}

func TestServiceUsageErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, args := range [][]string{
		{"service"},
		{"service", "bogus"},
		{"service", "-config", "/etc/rekey", "bogus"},
		{"service", "status", "extra", "-root", root},
		{"service", "install", "-nope", "-root", root},
		{"service", "uninstall", "-force", "-root", root},
		{"service", "status", "-binary", "/usr/bin/rekey", "-root", root},
		{"service", "install", "-binary", "rekey", "-root", root},
	} {
		out, errOut, code := run(t, args...)
		if code != ExitConfig || errOut == "" {
			t.Errorf("%q: exit %d, want %d with a message\n%s%s", args, code, ExitConfig, out, errOut)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) > 0 {
		t.Fatalf("a usage error wrote below the root: %v", entries)
	}
	for _, args := range [][]string{{"service", "help"}, {"service", "-h"}, {"help", "service"}, {"service", "install", "-h"}} {
		out, _, code := run(t, args...)
		if code != ExitOK || !strings.Contains(out, "uninstall") || !strings.Contains(out, "-force") || !strings.Contains(out, "-root DIR") || !strings.Contains(out, "-binary PATH") {
			t.Fatalf("%q: %d\n%s", args, code, out)
		}
	}
}

// TestServiceRootCreatedAndWarned: -root DIR is created, and install warns
// as a real install would; options go before or after the action.
func TestServiceRootCreatedAndWarned(t *testing.T) {
	t.Parallel()
	requireSystemctl(t, "systemctl")
	root := filepath.Join(t.TempDir(), "new", "root")
	cfg := filepath.Join(t.TempDir(), "missing-config")
	out, errOut, code := run(t, "service", "-root", root, "-config", cfg, "-binary", "/tmp/rekey", "install")
	if code != ExitOK {
		t.Fatalf("install into a new -root: %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"warning: the unit hides /tmp/ from the service",
		"warning: the configuration " + cfg + " does not exist yet",
		"warning: -binary /tmp/rekey does not exist on this machine",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("install -root did not warn %q:\n%s", want, errOut)
		}
	}
	if _, err := user.Lookup("rekey"); err != nil && !strings.Contains(errOut, "user rekey, which does not exist") {
		t.Errorf("install -root did not warn about the missing user rekey:\n%s", errOut)
	}
	if unit := readUnit(t, root); !strings.Contains(unit, "\nExecStart=/tmp/rekey run -config "+cfg+"\n") {
		t.Fatalf("ExecStart does not name -binary:\n%s", unit)
	}
	for _, args := range [][]string{{"service", "-root", root, "status"}, {"service", "status", "-root", root}} {
		if out, _, code := run(t, args...); code != ExitRuntime || !strings.HasPrefix(out, "stopped\n") {
			t.Errorf("%q: %d %q", args, code, out)
		}
	}
}

// TestServiceRefusesBuildCacheBinary: under go run (and go test) this
// program lives in Go's build cache; install refuses to write it into
// ExecStart and says how to build one.
func TestServiceRefusesBuildCacheBinary(t *testing.T) {
	t.Parallel()
	if !inBuildCache(testExecutable(t)) {
		t.Skipf("this test binary (%s) is not in a go-build directory", testExecutable(t))
	}
	root := t.TempDir()
	_, errOut, code := run(t, "service", "install", "-root", root, "-config", "/etc/rekey")
	if code != ExitConfig || !strings.Contains(errOut, "Go's build cache") || !strings.Contains(errOut, "go build -o rekey ./cmd/rekey") || !strings.Contains(errOut, "-binary") {
		t.Fatalf("install from the build cache: %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/rekey.service")); !os.IsNotExist(err) {
		t.Fatalf("a refused install wrote the unit: %v", err)
	}
}

func TestSystemdQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/usr/bin/rekey":         "/usr/bin/rekey",
		"/etc/rekey/a-b_c.d+e@f": "/etc/rekey/a-b_c.d+e@f",
		"/srv/my rekey":          `"/srv/my rekey"`,
		"/srv/100%":              `"/srv/100%%"`,
		"/srv/$USER":             `"/srv/$$USER"`,
		`/srv/a"b\c`:             `"/srv/a\"b\\c"`,
		"/srv/it's":              `"/srv/it's"`,
		"":                       `""`,
	} {
		if got := systemdQuote(in); got != want {
			t.Errorf("systemdQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if _, err := renderUnit(install.SystemdUnit, "/usr/bin/rekey", "/etc/rekey\nUser=root"); err == nil {
		t.Fatal("renderUnit accepted a path with a newline")
	}
}
