//go:build !unix

package harden

import (
	"fmt"
	"os"
)

// CheckFile checks that path is a regular file. On this platform access is
// governed by ACLs, which are not inspected: restrict the file to the
// service account and Administrators yourself.
func CheckFile(path string, opts FileOptions) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking permissions: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("checking permissions: %s is not a regular file", path)
	}
	return nil
}

// CheckDir checks that path is a directory; ACLs are not inspected.
func CheckDir(path string, opts FileOptions) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking permissions: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("checking permissions: %s is not a directory", path)
	}
	return nil
}

// CheckExecutable checks that path is a regular file; ACLs are not
// inspected.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking the program: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("checking the program: %s is not a regular file", path)
	}
	return nil
}

// CheckStateDir checks that path, if it exists, is a directory.
func CheckStateDir(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		return &StateDirError{Path: path, Problem: path + " is not a directory"}
	}
	return nil
}

// UserPrivateGroup reports false: there are no Unix groups here.
func UserPrivateGroup() bool { return false }
