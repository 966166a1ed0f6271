//go:build unix

package harden

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nobody = 65534

func TestCheckFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    os.FileMode
		owner   int // -1: leave as created
		secret  bool
		wantErr string // "" means accepted; otherwise a fragment of the fix
	}{
		{"config 0644 owned by us is fine", 0o644, -1, false, ""},
		{"secret 0600 owned by us is fine", 0o600, -1, true, ""},
		{"secret 0400 owned by us is fine", 0o400, -1, true, ""},
		{"group-writable config is refused", 0o664, -1, false, "chmod 0644 "},
		{"world-writable config is refused", 0o666, -1, false, "chmod 0644 "},
		{"world-readable token is refused", 0o644, -1, true, "chmod 0600 "},
		{"group-readable token is refused", 0o640, -1, true, "chmod 0600 "},
		{"world-writable token is refused", 0o666, -1, true, "chmod 0600 "},
		{"file owned by another user is refused", 0o600, nobody, false, "chown "},
		{"secret owned by another user is refused", 0o600, nobody, true, "chown "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("changing a file's owner needs root")
				}
				if err := os.Chown(path, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckFile(path, FileOptions{Secret: tt.secret})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckFile = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecure) {
				t.Fatalf("CheckFile = %v, want ErrInsecure", err)
			}
			var ie *InsecureError
			if !errors.As(err, &ie) {
				t.Fatalf("CheckFile = %T, want *InsecureError", err)
			}
			if !strings.HasPrefix(ie.Fix, tt.wantErr) || !strings.HasSuffix(ie.Fix, " "+path) {
				t.Errorf("fix = %q, want %q%s", ie.Fix, tt.wantErr, path)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "fix: "+ie.Fix) {
				t.Errorf("error %q does not name the file and the fix", err)
			}
		})
	}
}

func TestCheckFileApplyingTheFixWorks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	err := CheckFile(path, FileOptions{Secret: true})
	var ie *InsecureError
	if !errors.As(err, &ie) {
		t.Fatalf("CheckFile = %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if ie.Fix != "chmod 0600 "+path {
		t.Fatalf("fix = %q", ie.Fix)
	}
	if err := CheckFile(path, FileOptions{Secret: true}); err != nil {
		t.Errorf("after the fix: %v", err)
	}
}

func TestCheckDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    os.FileMode
		secret  bool
		wantFix string
	}{
		{"state dir 0700", 0o700, true, ""},
		{"state dir 0750 is refused", 0o750, true, "chmod 0700 "},
		{"state dir 0755 is refused", 0o755, true, "chmod 0700 "},
		{"config dir 0755", 0o755, false, ""},
		{"world-writable config dir is refused", 0o777, false, "chmod 0755 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			err := CheckDir(dir, FileOptions{Secret: tt.secret})
			if tt.wantFix == "" {
				if err != nil {
					t.Fatalf("CheckDir = %v", err)
				}
				return
			}
			var ie *InsecureError
			if !errors.As(err, &ie) || ie.Fix != tt.wantFix+dir {
				t.Fatalf("CheckDir = %v, want fix %q", err, tt.wantFix+dir)
			}
		})
	}
}

func TestCheckWrongType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := CheckFile(dir, FileOptions{}); err == nil || errors.Is(err, ErrInsecure) {
		t.Errorf("CheckFile(dir) = %v, want a not-a-regular-file error", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(file, FileOptions{}); err == nil {
		t.Error("CheckDir(file) = nil")
	}
	if err := CheckFile(filepath.Join(dir, "absent"), FileOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CheckFile(absent) = %v, want ErrNotExist", err)
	}
}

func TestCheckFollowsSymlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(link, FileOptions{Secret: true}); !errors.Is(err, ErrInsecure) {
		t.Errorf("CheckFile(link to a 0644 secret) = %v, want ErrInsecure", err)
	}
}

func TestOwnerProblemNamesRootOnce(t *testing.T) {
	t.Parallel()
	if got := ownerProblem("alice", 0, "root"); strings.Contains(got, "root or root") || got != "owned by alice, not by root, the user rekey runs as" {
		t.Errorf("as root: %q", got)
	}
	if got := ownerProblem("alice", 1000, "rekey"); got != "owned by alice, not by root or rekey, the user rekey runs as" {
		t.Errorf("as rekey: %q", got)
	}
}

func TestCheckExecutable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := CheckExecutable(write("ok", 0o755)); err != nil {
		t.Errorf("0755: %v", err)
	}
	var notExec *NotExecutableError
	if err := CheckExecutable(write("plain", 0o644)); !errors.As(err, &notExec) || !strings.Contains(err.Error(), "fix: chmod 0744") {
		t.Errorf("0644: %v", err)
	}
	if err := CheckExecutable(write("open", 0o777)); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "fix: chmod 0755") {
		t.Errorf("0777: %v", err)
	}
	if err := CheckExecutable(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if err := CheckExecutable(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(shared, "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckExecutable(p); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "holds hook, which rekey runs") {
		t.Errorf("in a 0777 directory: %v", err)
	}
	if err := os.Chmod(shared, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckExecutable(p); err != nil {
		t.Errorf("in a sticky directory: %v", err)
	}
}

func TestCheckStateDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := CheckStateDir(filepath.Join(dir, "new", "state")); err != nil {
		t.Errorf("not yet created: %v", err)
	}
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckStateDir(private); err != nil {
		t.Errorf("0700 directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var sd *StateDirError
	for _, p := range []string{"/proc", "/proc/rekey", "/sys/fs", "/dev/shm/rekey", file, filepath.Join(file, "state")} {
		if err := CheckStateDir(p); !errors.As(err, &sd) {
			t.Errorf("%s: %v", p, err)
		}
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckStateDir(open); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "chmod 0700") {
		t.Errorf("0755: %v", err)
	}
}
