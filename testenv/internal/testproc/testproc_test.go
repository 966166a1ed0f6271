//go:build unix

package testproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTailKeepsTheLastLinesCleaned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("one\nRoot Token: s.secret\nthree\nfour\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := Tail(path, 3, func(l string) string { return strings.Replace(l, "s.secret", "[REDACTED]", 1) })
	if got != "Root Token: [REDACTED]\nthree\nfour" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "absent"), 3, nil); !strings.Contains(got, "no such file") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}

// TestKillReachesTheGroup: a child the server started dies with it.
func TestKillReachesTheGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	p, err := Start(exec.Command("/bin/sh", "-c", `sleep 600 & echo $! > "$1"; wait`, "sh", pidFile))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for child == 0 {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			if child, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatal(err)
			}
		}
		if p.Exited() {
			t.Fatal("the shell exited early")
		}
	}
	p.Kill()
	if !p.Exited() {
		t.Fatal("Kill returned before the process exited")
	}
	// SIGKILL is delivered asynchronously: wait (bounded) until the child
	// is gone or a zombie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "stat"))
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs after Kill: %s", child, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var nilProc *Process
	nilProc.Kill()
	nilProc.Stop(syscall.SIGTERM)
}

func TestStopSignalsTheLeader(t *testing.T) {
	p, err := Start(exec.Command("/bin/sh", "-c", `trap 'exit 0' TERM; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(syscall.SIGTERM)
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the process exited")
	}
}

func TestFreePortAndRandomHex(t *testing.T) {
	if p, err := FreePort(); err != nil || p <= 0 {
		t.Errorf("FreePort = %d, %v", p, err)
	}
	a, b := RandomHex(16), RandomHex(16)
	if len(a) != 32 || a == b {
		t.Errorf("RandomHex: %q, %q", a, b)
	}
}
