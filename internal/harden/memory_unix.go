//go:build unix && !linux

package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LockMemory is not provided on this system; it returns ErrUnsupported.
func LockMemory() error { return fmt.Errorf("locking memory: %w", ErrUnsupported) }

// DisableCoreDumps sets RLIMIT_CORE to zero.
func DisableCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disabling core dumps: %w", err)
	}
	return nil
}
