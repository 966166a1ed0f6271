//go:build unix

package dbtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// server a test failure instead of a skip.
const EnvRequire = "REKEY_TEST_REQUIRE_SERVERS"

func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// process is a started server; one goroutine waits for it.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// account is the unprivileged user a server runs as when the tests run as
// root (database servers refuse to run as root).
type account struct {
	uid, gid uint32
	home     string
	set      bool
}

// serviceAccount returns the system user name when running as root, and
// the current user otherwise.
func serviceAccount(name string) (account, error) {
	if os.Geteuid() != 0 {
		return account{}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("running as root, the server needs the system user %q: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, set: true}, nil
}

// chown gives path to the account (a no-op when not running as root).
func (a account) chown(paths ...string) error {
	if !a.set {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(a.uid), int(a.gid)); err != nil {
			return err
		}
	}
	return nil
}

// command returns a command that runs as the account in its own process
// group.
func (a account) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if a.set {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid}
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=C", "TZ=UTC"}
	return cmd
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the whole process group and waits for the leader.
func (p *process) kill() {
	if p == nil {
		return
	}
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// signal sends sig to the process group leader and waits for it to exit.
func (p *process) stop(sig syscall.Signal) {
	if p == nil {
		return
	}
	if !p.exited() {
		_ = syscall.Kill(p.cmd.Process.Pid, sig)
	}
	<-p.done
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
