//go:build !unix

package exec

import osexec "os/exec"

// prepare keeps the default: a timeout kills the process itself.
func prepare(*osexec.Cmd) {}
