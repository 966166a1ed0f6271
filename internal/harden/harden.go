// Package harden reduces what a compromise of the host or a crash can
// reveal of the secrets that pass through the daemon: it locks memory so
// that key values are never paged to swap, disables core dumps, and refuses
// configuration and credential files that other users could change or read.
//
// Linux gets every measure; other Unix systems get what they support;
// elsewhere the functions return ErrUnsupported (memory, core dumps) or
// check only what the platform's file modes can express.
package harden

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrUnsupported reports a measure that this platform does not provide.
var ErrUnsupported = errors.New("not supported on this platform")

// ErrInsecure is wrapped by every error of CheckFile and CheckDir that
// reports unsafe ownership or permissions.
var ErrInsecure = errors.New("insecure file permissions")

// FileOptions tune CheckFile and CheckDir.
type FileOptions struct {
	// Secret marks a file or directory holding secret material (a Vault
	// token, an AppRole secret id, credentials, the state directory): it
	// must not be readable by group or others.
	Secret bool
}

// InsecureError describes a file that fails a check, and how to fix it.
type InsecureError struct {
	// Path is the file checked.
	Path string
	// Problem says what is wrong, e.g. "writable by group and others".
	Problem string
	// Mode is the file's permission bits.
	Mode fs.FileMode
	// Fix is a command that corrects it, e.g. "chmod 0600 /etc/rekey/token".
	Fix string
}

// Error implements error.
func (e *InsecureError) Error() string {
	return fmt.Sprintf("refusing %s: %s (mode %04o); fix: %s", e.Path, e.Problem, e.Mode.Perm(), e.Fix)
}

// Unwrap makes errors.Is(err, ErrInsecure) true.
func (e *InsecureError) Unwrap() error { return ErrInsecure }

// NotExecutableError reports a program that rekey cannot execute.
type NotExecutableError struct {
	Path string
	Mode fs.FileMode
}

// Error implements error.
func (e *NotExecutableError) Error() string {
	return fmt.Sprintf("%s is not executable (mode %04o); fix: chmod %04o %s", e.Path, e.Mode.Perm(), e.Mode.Perm()|0o100, e.Path)
}

// StateDirError reports a state directory that cannot hold rekey's
// journal.
type StateDirError struct {
	Path    string
	Problem string
}

// Error implements error.
func (e *StateDirError) Error() string {
	return fmt.Sprintf("the state directory %s cannot hold rekey's journal: %s", e.Path, e.Problem)
}
