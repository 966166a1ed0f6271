//go:build unix

package harden

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// withAccounts points privateGroup at the given passwd and group files.
func withAccounts(t *testing.T, passwd, group string) {
	t.Helper()
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(p, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	oldP, oldG := passwdPath, groupPath
	passwdPath, groupPath = p, g
	t.Cleanup(func() { passwdPath, groupPath = oldP, oldG })
}

func TestPrivateGroup(t *testing.T) {
	const users = "root:x:0:0:root:/root:/bin/bash\nann:x:1000:1000::/home/ann:/bin/sh\nbob:x:1001:100::/home/bob:/bin/sh\n"
	tests := []struct {
		name          string
		passwd, group string
		uid, gid      uint32
		want          bool
	}{
		{"the user's private group", users, "root:x:0:\nann:x:1000:\nusers:x:100:bob\n", 1000, 1000, true},
		{"the private group lists the user", users, "ann:x:1000:ann\n", 1000, 1000, true},
		{"a shared group (another member)", users, "ann:x:1000:bob\n", 1000, 1000, false},
		{"a group named otherwise", users, "staff:x:1000:\n", 1000, 1000, false},
		{"another account's primary group", users, "users:x:100:\n", 1001, 100, false},
		{"not the user's primary group", users, "root:x:0:\n", 1000, 0, false},
		{"two accounts share the primary group", users + "eve:x:1002:1000::/home/eve:/bin/sh\n", "ann:x:1000:\n", 1000, 1000, false},
		{"the group is not in the local file", users, "root:x:0:\n", 1000, 1000, false},
		{"the user is not in the local file", users, "carl:x:2000:\n", 2000, 2000, false},
		{"NIS compat entries", users + "+::::::\n", "ann:x:1000:\n", 1000, 1000, false},
		{"root's group", users, "root:x:0:\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withAccounts(t, tt.passwd, tt.group)
			if got := privateGroup(tt.uid, tt.gid); got != tt.want {
				t.Errorf("privateGroup(%d, %d) = %v, want %v", tt.uid, tt.gid, got, tt.want)
			}
		})
	}
}

// TestGroupWritableInPrivateGroup: a umask 002 file (0664) and directory
// (0775) of the user's private group pass; the same in a shared group are
// refused, and so is anything writable by others or holding secrets.
func TestGroupWritableInPrivateGroup(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rekey.hcl")
	prog := filepath.Join(dir, "hook.sh")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{file, 0o664}, {prog, 0o775}} {
		if err := os.WriteFile(f.path, []byte("x"), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Geteuid(), st.Gid
	me := fmt.Sprintf("me:x:%d:%d::/home/me:/bin/sh\n", uid, gid)
	private := fmt.Sprintf("me:x:%d:\n", gid)
	shared := fmt.Sprintf("me:x:%d:me,bob\n", gid)

	withAccounts(t, me, private)
	if err := CheckFile(file, FileOptions{}); err != nil {
		t.Errorf("0664 file in the private group: %v", err)
	}
	if err := CheckDir(dir, FileOptions{}); err != nil {
		t.Errorf("0775 directory in the private group: %v", err)
	}
	if err := CheckExecutable(prog); err != nil {
		t.Errorf("0775 program in a 0775 directory of the private group: %v", err)
	}
	if err := CheckFile(file, FileOptions{Secret: true}); !errors.Is(err, ErrInsecure) {
		t.Errorf("a secret 0664 file in the private group: %v, want refused", err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(file, FileOptions{}); !errors.Is(err, ErrInsecure) {
		t.Errorf("0666 file in the private group: %v, want refused", err)
	}
	if err := os.Chmod(file, 0o664); err != nil {
		t.Fatal(err)
	}

	withAccounts(t, me, shared)
	if err := CheckFile(file, FileOptions{}); !errors.Is(err, ErrInsecure) {
		t.Errorf("0664 file in a shared group: %v, want refused", err)
	}
	if err := CheckExecutable(prog); !errors.Is(err, ErrInsecure) {
		t.Errorf("0775 program in a shared group: %v, want refused", err)
	}
}

// The package's tests run with account files that do not exist, so that
// no group is a user private group and group write is refused as on a
// machine without them; the tests of the exception (sequential, so done
// before any parallel test resumes) point them elsewhere while they run.
func init() {
	passwdPath, groupPath = "/nonexistent/passwd", "/nonexistent/group"
}
