//go:build !unix

package harden

import "fmt"

// LockMemory is not provided on this system; it returns ErrUnsupported.
func LockMemory() error { return fmt.Errorf("locking memory: %w", ErrUnsupported) }

// DisableCoreDumps is not provided on this system; it returns
// ErrUnsupported. Windows writes no core dumps unless Windows Error
// Reporting is configured to (LocalDumps).
func DisableCoreDumps() error { return fmt.Errorf("disabling core dumps: %w", ErrUnsupported) }
