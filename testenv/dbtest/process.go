//go:build unix

package dbtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
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

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string { return testproc.RandomHex(n) }
