//go:build unix

package harden

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// CheckFile refuses a regular file that another user could change: one
// writable by group or others, or owned by a user other than root or the
// current user. With opts.Secret it also refuses a file readable by group
// or others. Symbolic links are followed. The error, an *InsecureError
// wrapping ErrInsecure, names the command that fixes it.
func CheckFile(path string, opts FileOptions) error {
	return check(path, false, opts)
}

// CheckDir is CheckFile for a directory; with opts.Secret (the state
// directory) the directory must be accessible to its owner only (0700).
func CheckDir(path string, opts FileOptions) error {
	return check(path, true, opts)
}

func check(path string, dir bool, opts FileOptions) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking permissions: %w", err)
	}
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("checking permissions: %s is not a directory", path)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("checking permissions: %s is not a regular file", path)
	}
	mode := fi.Mode()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if !opts.Secret && groupWriteHarmless(st, mode) {
			mode &^= 0o020
		}
		uid := int(st.Uid)
		if me := os.Geteuid(); uid != 0 && uid != me {
			return &InsecureError{
				Path:    path,
				Problem: ownerProblem(userName(uid), me, userName(me)),
				Mode:    fi.Mode(),
				Fix:     fmt.Sprintf("chown %s %s", userName(me), path),
			}
		}
	}
	if problem, fixMode := permProblem(mode, dir, opts); problem != "" {
		return &InsecureError{
			Path:    path,
			Problem: problem,
			Mode:    fi.Mode(),
			Fix:     fmt.Sprintf("chmod %04o %s", fixMode, path),
		}
	}
	return nil
}

// groupWriteHarmless reports whether the group write bit of a file rekey's
// user owns grants nobody else anything: the group is that user's private
// group (privateGroup) and others cannot write.
func groupWriteHarmless(st *syscall.Stat_t, mode fs.FileMode) bool {
	return mode.Perm()&0o020 != 0 && mode.Perm()&0o002 == 0 &&
		int(st.Uid) == os.Geteuid() && privateGroup(st.Uid, st.Gid)
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// permProblem returns what is wrong with mode for a file (dir=false) or a
// directory, and the chmod mode that fixes it; "" if nothing.
func permProblem(mode fs.FileMode, dir bool, opts FileOptions) (problem string, fix fs.FileMode) {
	perm := mode.Perm()
	switch {
	case perm&0o022 != 0:
		problem = "writable by " + who(perm, 0o020, 0o002)
	case opts.Secret && perm&0o077 != 0:
		problem = "holds secrets but is accessible to " + who(perm, 0o070, 0o007)
	default:
		return "", 0
	}
	switch {
	case opts.Secret && dir:
		fix = 0o700
	case opts.Secret:
		fix = 0o600
	default:
		fix = perm &^ 0o022
	}
	return problem, fix
}

func who(perm, group, other fs.FileMode) string {
	switch {
	case perm&group != 0 && perm&other != 0:
		return "group and others"
	case perm&group != 0:
		return "group"
	default:
		return "others"
	}
}

// ownerProblem says who owns a file and who may; running as root, root is
// named once.
func ownerProblem(owner string, me int, meName string) string {
	if me == 0 {
		return fmt.Sprintf("owned by %s, not by root, the user rekey runs as", owner)
	}
	return fmt.Sprintf("owned by %s, not by root or %s, the user rekey runs as", owner, meName)
}

// CheckExecutable refuses a program rekey would run that is missing, not
// an executable regular file, or that another user could change: the
// file itself (as CheckFile), or the directory holding it when that is
// writable by group or others without the sticky bit (anyone could
// replace the program). Symbolic links are followed.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking the program: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("checking the program: %s is not a regular file", path)
	}
	if err := syscall.Access(path, 1); err != nil || fi.Mode().Perm()&0o111 == 0 {
		return &NotExecutableError{Path: path, Mode: fi.Mode()}
	}
	if err := CheckFile(path, FileOptions{}); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("checking the program: %w", err)
	}
	dir := filepath.Dir(real)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking the program: %w", err)
	}
	dmode := di.Mode()
	if st, ok := di.Sys().(*syscall.Stat_t); ok && groupWriteHarmless(st, dmode) {
		dmode &^= 0o020
	}
	if dmode.Perm()&0o022 != 0 && dmode&fs.ModeSticky == 0 {
		return &InsecureError{
			Path:    dir,
			Problem: "holds " + filepath.Base(real) + ", which rekey runs, and is writable by " + who(di.Mode().Perm(), 0o020, 0o002),
			Mode:    di.Mode(),
			Fix:     fmt.Sprintf("chmod %04o %s", di.Mode().Perm()&^0o022, dir),
		}
	}
	return nil
}
