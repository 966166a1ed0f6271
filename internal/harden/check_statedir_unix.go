//go:build unix

package harden

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckStateDir refuses a state directory that cannot hold the journal:
// a path under a file rather than a directory, a pseudo file system
// (/proc, /sys, /dev), a read-only file system, one rekey cannot write, or
// one that others can enter (CheckDir with Secret). A directory that does
// not exist yet is fine when the nearest existing ancestor passes the file
// system checks: rekey creates it at start.
func CheckStateDir(path string) error {
	dir := filepath.Clean(path)
	fi, err := os.Stat(dir)
	exists := err == nil
	for err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return &StateDirError{Path: path, Problem: cause(err).Error()}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return &StateDirError{Path: path, Problem: "no part of the path exists"}
		}
		dir = parent
		fi, err = os.Stat(dir)
	}
	if !fi.IsDir() {
		return &StateDirError{Path: path, Problem: dir + " is not a directory"}
	}
	for _, k := range []string{"/proc", "/sys", "/dev"} {
		if abs, _ := filepath.Abs(path); abs == k || strings.HasPrefix(abs, k+"/") {
			return &StateDirError{Path: path, Problem: k + " is a kernel interface, not storage; use a directory such as /var/lib/rekey"}
		}
	}
	if problem := fsProblem(dir); problem != "" {
		return &StateDirError{Path: path, Problem: problem}
	}
	if !exists {
		return nil
	}
	if err := syscall.Access(dir, 2|1); err != nil {
		return &StateDirError{Path: path, Problem: "the user rekey runs as cannot write it (" + err.Error() + ")"}
	}
	return CheckDir(path, FileOptions{Secret: true})
}

func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
