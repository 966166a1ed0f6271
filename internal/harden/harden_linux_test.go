//go:build linux

package harden

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The child half of TestDisableCoreDumps: it runs in a separate process so
// that the test binary itself stays dumpable.
func TestMain(m *testing.M) {
	if os.Getenv("REKEY_HARDEN_CHILD") == "coredumps" {
		if err := DisableCoreDumps(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("core=%d/%d dumpable=%d\n", rl.Cur, rl.Max, dumpable)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDisableCoreDumps(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REKEY_HARDEN_CHILD=coredumps")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "core=0/0 dumpable=0"; got != want {
		t.Errorf("child reported %q, want %q", got, want)
	}
}

func vmLocked(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmLck:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return ""
}

func TestLockMemory(t *testing.T) {
	if err := LockMemory(); err != nil {
		// Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK the call
		// fails; the error must then say what to do.
		if !strings.Contains(err.Error(), "LimitMEMLOCK=infinity") {
			t.Fatalf("LockMemory error does not say how to fix it: %v", err)
		}
		t.Skipf("mlockall not permitted here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Munlockall() })
	if got := vmLocked(t); got == "0 kB" {
		t.Errorf("VmLck = %s after LockMemory", got)
	}
}
