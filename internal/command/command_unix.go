//go:build unix

package command

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// prepare starts the command in its own process group and makes a timeout
// kill the whole group, so that children of a script die with it.
func prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
