//go:build !unix

package command

import "os/exec"

// prepare keeps exec's default: a timeout kills the process itself.
func prepare(cmd *exec.Cmd) {}
