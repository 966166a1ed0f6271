//go:build unix

package rotator

import "syscall"

func killSelf() { _ = syscall.Kill(syscall.Getpid(), syscall.SIGKILL) }
