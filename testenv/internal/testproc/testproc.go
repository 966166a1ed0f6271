// Package testproc is what the test environments' server starters share:
// a server process in its own process group whose exit one goroutine
// observes, free ports, the tail of a log and random hex strings.
package testproc

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
)

// Process is a started server.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd in its own process group (where the platform has them)
// and waits for its exit in one goroutine.
func Start(cmd *exec.Cmd) (*Process, error) {
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill kills the whole process group and waits for the leader. A nil
// Process is a no-op.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	if !p.Exited() {
		killGroup(p.cmd)
	}
	<-p.done
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the last n lines of the file at path, each passed through
// clean when it is not nil (to redact what a log must not show).
func Tail(path string, n int, clean func(string) string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if clean != nil {
			line = clean(line)
		}
		lines = append(lines, line)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
