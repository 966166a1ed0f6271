package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// buildPackages runs build-packages.sh into a temp dir. It is slow (it
// builds nfpm and rekey), so it runs only with REKEY_TEST_PACKAGES=1,
// which CI sets.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	if os.Getenv("REKEY_TEST_PACKAGES") != "1" {
		t.Skip("building packages is slow; set REKEY_TEST_PACKAGES=1 to run it")
	}
	dist := t.TempDir()
	cmd := exec.Command("sh", "build-packages.sh", "0.0.0-test")
	cmd.Env = append(os.Environ(), "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-packages.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("built %v and %v, want one .deb and one .rpm", debs, rpms)
	}
	return debs[0], rpms[0]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPackages(t *testing.T) {
	deb, rpm := buildPackages(t)
	requireTool(t, "dpkg-deb")

	t.Run("deb contents", func(t *testing.T) {
		listing := run(t, "dpkg-deb", "-c", deb)
		for path, mode := range map[string]string{
			"./usr/bin/rekey":                           "-rwxr-xr-x root/root",
			"./lib/systemd/system/rekey.service":        "-rw-r--r-- root/root",
			"./etc/rekey/rekey.hcl":                     "-rw-r----- root/root",
			"./usr/share/doc/rekey/examples/alerts.yml": "-rw-r--r-- root/root",
		} {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + `\s+\d+ \S+ \S+ ` + regexp.QuoteMeta(path) + `$`)
			if !re.MatchString(listing) {
				t.Errorf("%s not in the package with mode %s:\n%s", path, mode, listing)
			}
		}
	})

	t.Run("deb control", func(t *testing.T) {
		info := run(t, "dpkg-deb", "-I", deb)
		for _, want := range []string{"Package: rekey", "Version: 0.0.0-test", "postinst", "prerm", "postrm", "conffiles"} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
			}
		}
		ctrl := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, ctrl)
		conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
		if strings.TrimSpace(string(conffiles)) != "/etc/rekey/rekey.hcl" {
			t.Errorf("conffiles = %q, want /etc/rekey/rekey.hcl only", conffiles)
		}
		postinst, _ := os.ReadFile(filepath.Join(ctrl, "postinst"))
		checkPostinst(t, string(postinst))
		prerm, _ := os.ReadFile(filepath.Join(ctrl, "prerm"))
		if !strings.Contains(string(prerm), "systemctl stop rekey.service") {
			t.Errorf("prerm does not stop the service:\n%s", prerm)
		}
	})

	t.Run("deb binary is the built rekey", func(t *testing.T) {
		dir := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, dir)
		out := run(t, filepath.Join(dir, "usr/bin/rekey"), "version")
		if !strings.Contains(out, "rekey 0.0.0-test") {
			t.Errorf("rekey version printed %q, want the package version", out)
		}
	})

	t.Run("rpm", func(t *testing.T) {
		requireTool(t, "rpm")
		files := run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", rpm)
		for _, want := range []string{"-rwxr-xr-x /usr/bin/rekey", "-rw-r--r-- /lib/systemd/system/rekey.service", "-rw-r----- /etc/rekey/rekey.hcl"} {
			if !strings.Contains(files, want) {
				t.Errorf("rpm lacks %q:\n%s", want, files)
			}
		}
		if cf := run(t, "rpm", "-qp", "--configfiles", rpm); strings.TrimSpace(cf) != "/etc/rekey/rekey.hcl" {
			t.Errorf("rpm config files = %q", cf)
		}
		checkPostinst(t, run(t, "rpm", "-qp", "--scripts", rpm))
	})
}

func checkPostinst(t *testing.T, script string) {
	t.Helper()
	for _, want := range []string{"adduser --system", "useradd --system", "install -d -m 0700 -o rekey -g rekey /var/lib/rekey", "systemctl daemon-reload"} {
		if !strings.Contains(script, want) {
			t.Errorf("postinstall lacks %q", want)
		}
	}
	var code []string
	for _, line := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code = append(code, line)
		}
	}
	for _, never := range []string{"systemctl start", "systemctl enable", "systemctl restart"} {
		if strings.Contains(strings.Join(code, "\n"), never) {
			t.Errorf("postinstall runs %q: installing must not start the service", never)
		}
	}
}

func TestBuildPackagesUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"latest"}} {
		cmd := exec.Command("sh", append([]string{"build-packages.sh"}, args...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("build-packages.sh %v: err = %v, want exit 2\n%s", args, err, out)
		}
	}
}
