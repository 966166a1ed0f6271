//go:build unix

package expressgw

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the gateway in its own process group, so that kill
// reaches any child it starts.
func setProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killProcess(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
