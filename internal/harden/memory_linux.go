//go:build linux

package harden

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// LockMemory locks the process's current and future pages in RAM
// (mlockall MCL_CURRENT|MCL_FUTURE) so that secret values are never
// written to swap. It needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK:
// the systemd unit sets LimitMEMLOCK=infinity.
//
// Pages are locked as they are first touched (MCL_ONFAULT, Linux 4.4+)
// rather than all at once: locking every mapping the Go runtime reserves
// up front quadruples the resident size for no gain. Older kernels, which
// refuse MCL_ONFAULT with EINVAL, get the plain form.
func LockMemory() error {
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		return fmt.Errorf("locking memory (set LimitMEMLOCK=infinity in the unit, or run with CAP_IPC_LOCK): %w", err)
	}
	return nil
}

// DisableCoreDumps sets RLIMIT_CORE to zero and marks the process not
// dumpable (PR_SET_DUMPABLE 0), which also stops other processes of the
// same user from attaching a debugger or reading its memory through /proc.
func DisableCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("marking process not dumpable: %w", err)
	}
	return nil
}
