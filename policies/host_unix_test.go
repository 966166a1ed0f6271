//go:build unix

package policies

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// hostPolicy is a valid policy of the test kinds; extra goes into the
// policy body.
func hostPolicy(name, extra string) string {
	return "policy \"" + name + "\" {\n  every = \"1d\"\n  provider \"test\" {\n    name = \"" + name + "\"\n  }\n  sink \"test\" {\n    path = \"/srv/" + name + "\"\n  }\n  probe \"test\" {}\n" + extra + "}\n"
}

// hostDir returns a private directory holding a state directory and a
// policy file with state_dir set to it.
func hostDir(t *testing.T, policies string) (dir, state string) {
	t.Helper()
	dir = t.TempDir()
	state = filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "conf", "rekey.hcl"), "state_dir = \""+state+"\"\n"+policies, 0o644)
	return filepath.Join(dir, "conf"), state
}

func writeFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// wantProblem loads conf and wants an error with this summary whose detail
// holds fragment.
func wantProblem(t *testing.T, conf, summary, fragment string) hcl.Diagnostics {
	t.Helper()
	l := &Loader{LookupEnv: testEnv}
	cfg, diags := l.Load(conf)
	if cfg != nil {
		t.Fatalf("loaded; diagnostics %v", diags)
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Summary == summary && strings.Contains(d.Detail, fragment) {
			return diags
		}
	}
	t.Fatalf("want %q with %q, got %v", summary, fragment, diags)
	return nil
}

func TestHostChecksPass(t *testing.T) {
	t.Parallel()
	conf, _ := hostDir(t, hostPolicy("ok", "  reload \"test\" {\n    command = [\"sh\", \"-c\", \"true\"]\n  }\n"))
	l := &Loader{LookupEnv: testEnv}
	cfg, diags := l.Load(conf)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_ = cfg.Connections.Close()
}

func TestHostChecksConfigFiles(t *testing.T) {
	t.Parallel()
	t.Run("world-writable file", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Chmod(filepath.Join(conf, "rekey.hcl"), 0o666); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, conf, "Insecure policy file", "writable by group and others (mode 0666); fix: chmod 0644")
	})
	t.Run("0777 directory", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Chmod(conf, 0o777); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, conf, "Insecure configuration directory", "fix: chmod 0755 "+conf)
	})
	t.Run("file named alone in a 0777 directory", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Chmod(conf, 0o777); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, filepath.Join(conf, "rekey.hcl"), "Insecure configuration directory", "writable by group and others")
	})
	t.Run("file owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("changing a file's owner needs root")
		}
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Chown(filepath.Join(conf, "rekey.hcl"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		diags := wantProblem(t, conf, "Insecure policy file", "not by root, the user rekey runs as")
		if strings.Contains(diags.Error(), "root or root") {
			t.Error(diags)
		}
	})
	t.Run("odd entries", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Mkdir(filepath.Join(conf, "dir.hcl"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(conf, "gone"), filepath.Join(conf, "dangling.hcl")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(conf, "fifo.hcl"), 0o644); err != nil {
			t.Fatal(err)
		}
		l := &Loader{LookupEnv: testEnv}
		cfg, diags := l.Load(conf)
		if cfg != nil {
			t.Fatal("loaded")
		}
		var details []string
		for _, d := range diags {
			details = append(details, d.Summary+": "+d.Detail)
		}
		got := strings.Join(details, "\n")
		for _, want := range []string{"dangling.hcl is a symbolic link to a file that does not exist", "dir.hcl is a directory", "fifo.hcl is a FIFO"} {
			if !strings.Contains(got, want) {
				t.Errorf("missing %q in\n%s", want, got)
			}
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every file")
		}
		conf, _ := hostDir(t, hostPolicy("a", ""))
		if err := os.Chmod(filepath.Join(conf, "rekey.hcl"), 0o000); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, conf, "Cannot read policy file", "permission denied")
	})
}

func TestHostChecksReferencedFiles(t *testing.T) {
	t.Parallel()
	t.Run("world-writable script", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  reload \"test\" {\n    command = [\"./hook.sh\"]\n  }\n"))
		writeFile(t, filepath.Join(conf, "hook.sh"), "#!/bin/sh\n", 0o777)
		wantProblem(t, conf, "Insecure command", "hook.sh: writable by group and others (mode 0777); fix: chmod 0755")
	})
	t.Run("script in a world-writable directory", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  reload \"test\" {\n    command = [\"bin/hook.sh\"]\n  }\n"))
		writeFile(t, filepath.Join(conf, "bin", "hook.sh"), "#!/bin/sh\n", 0o755)
		if err := os.Chmod(filepath.Join(conf, "bin"), 0o777); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, conf, "Insecure command", "which rekey runs, and is writable by group and others")
	})
	t.Run("missing command", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  reload \"test\" {\n    command = [\"/nonexistent/hook\"]\n  }\n"))
		wantProblem(t, conf, "Command not found", "/nonexistent/hook of command does not exist")
	})
	t.Run("command not in PATH", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  reload \"test\" {\n    command = [\"rekey-no-such-program\"]\n  }\n"))
		wantProblem(t, conf, "Command not found", "is not found in PATH")
	})
	t.Run("command not executable", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  reload \"test\" {\n    command = [\"./hook.sh\"]\n  }\n"))
		writeFile(t, filepath.Join(conf, "hook.sh"), "#!/bin/sh\n", 0o644)
		wantProblem(t, conf, "Command not executable", "fix: chmod 0744")
	})
	t.Run("readable token file", func(t *testing.T) {
		conf, _ := hostDir(t, "testconn \"c\" {\n  address    = \"x\"\n  token_file = \"token\"\n}\n"+hostPolicy("a", ""))
		writeFile(t, filepath.Join(conf, "token"), "t", 0o644)
		wantProblem(t, conf, "Insecure file in token_file", "holds secrets but is accessible to group and others (mode 0644); fix: chmod 0600")
	})
	t.Run("undeclared dsn_file of a new kind", func(t *testing.T) {
		conf, _ := hostDir(t, hostPolicy("a", "  notify \"test\" {\n    dsn_file = \"dsn\"\n  }\n"))
		writeFile(t, filepath.Join(conf, "dsn"), "postgres://", 0o640)
		wantProblem(t, conf, "Insecure file in dsn_file", "holds secrets but is accessible to group")
	})
	t.Run("sink writing the journal", func(t *testing.T) {
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		src := "state_dir = \"" + state + "\"\n" + strings.Replace(hostPolicy("a", ""), "/srv/a", state+"/journal.db", 1)
		writeFile(t, filepath.Join(dir, "rekey.hcl"), src, 0o644)
		wantProblem(t, filepath.Join(dir, "rekey.hcl"), "File inside state_dir", "journal.db) lies inside the state directory")
	})
	t.Run("state_dir /proc", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "rekey.hcl"), "state_dir = \"/proc\"\n"+hostPolicy("a", ""), 0o644)
		diags := wantProblem(t, filepath.Join(dir, "rekey.hcl"), "Bad state_dir", "/proc is a kernel interface")
		if d := diags[len(diags)-1]; d.Subject == nil || d.Subject.Start.Line != 1 {
			t.Errorf("no position on state_dir: %+v", d)
		}
	})
	t.Run("state_dir under a file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "f"), "", 0o644)
		writeFile(t, filepath.Join(dir, "rekey.hcl"), "state_dir = \"f/state\"\n"+hostPolicy("a", ""), 0o644)
		wantProblem(t, filepath.Join(dir, "rekey.hcl"), "Bad state_dir", "is not a directory")
	})
	t.Run("state_dir open to others", func(t *testing.T) {
		conf, state := hostDir(t, hostPolicy("a", ""))
		if err := os.Chmod(state, 0o755); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, conf, "Insecure state_dir", "fix: chmod 0700 "+state)
	})
}
