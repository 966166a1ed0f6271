//go:build unix

package testproc

import (
	"os/exec"
	"syscall"
)

func setProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

// Stop sends sig to the process group leader, waits for it to exit, then
// kills what is left of its group. A nil Process is a no-op.
func (p *Process) Stop(sig syscall.Signal) {
	if p == nil {
		return
	}
	if !p.Exited() {
		_ = syscall.Kill(p.cmd.Process.Pid, sig)
	}
	<-p.done
	killGroup(p.cmd)
}
