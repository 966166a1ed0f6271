package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unixgram socket, at a path in a temp dir or, for a
// name starting with '@', in the abstract namespace.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	if name == "" {
		name = filepath.Join(t.TempDir(), "notify.sock")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading notification: %v", err)
	}
	return string(buf[:n])
}

// pending returns the datagrams already queued on c.
func pending(t *testing.T, c *net.UnixConn) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	for {
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestNotifyMessages(t *testing.T) {
	c := listen(t, "")
	t.Setenv("NOTIFY_SOCKET", c.LocalAddr().String())
	if !Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"status with newline is one line", func() error { return Status("3 policies\nok") }, "STATUS=3 policies ok"},
		{"raw", func() error { return Notify("ERRNO=5") }, "ERRNO=5"},
	}
	for _, tt := range tests {
		if err := tt.call(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := receive(t, c); got != tt.want {
			t.Errorf("%s: sent %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReloadingCarriesMonotonicTimestamp(t *testing.T) {
	c := listen(t, "")
	t.Setenv("NOTIFY_SOCKET", c.LocalAddr().String())
	before, ok := monotonicUsec()
	if !ok {
		t.Fatal("CLOCK_MONOTONIC unreadable")
	}
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicUsec()
	lines := strings.Split(receive(t, c), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC=", lines)
	}
	usec, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d not between readings %d and %d taken around the call", usec, before, after)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@rekey-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c := listen(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, c); got != "READY=1" {
		t.Errorf("got %q", got)
	}
}

func TestWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if Enabled() {
		t.Error("Enabled() = true without NOTIFY_SOCKET")
	}
	if err := Ready(); err != nil {
		t.Errorf("Ready() without NOTIFY_SOCKET = %v, want nil", err)
	}
}

func TestErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := Ready(); !errors.Is(err, ErrUnsupportedSocket) {
		t.Errorf("vsock address: err = %v, want ErrUnsupportedSocket", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if err := Ready(); err == nil {
		t.Error("socket that nobody listens on: err = nil")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"no watchdog", "", "", 0, false},
		{"for this process", "60000000", pid, time.Minute, true},
		{"without WATCHDOG_PID", "30000000", "", 30 * time.Second, true},
		{"inherited from another process", "60000000", "1", 0, false},
		{"garbage", "soon", pid, 0, false},
		{"zero", "0", pid, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.ok {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	c := listen(t, "")
	t.Setenv("NOTIFY_SOCKET", c.LocalAddr().String())
	t.Setenv("WATCHDOG_USEC", "2000") // ticks every millisecond
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	w, ok := NewWatchdog()
	if !ok {
		t.Fatal("NewWatchdog: not enabled")
	}
	if w.Interval() != 2*time.Millisecond {
		t.Fatalf("Interval() = %v", w.Interval())
	}

	// Each tick asks the test whether the engine is alive.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	asked := make(chan chan bool)
	alive := func() bool {
		answer := make(chan bool)
		select {
		case asked <- answer:
			return <-answer
		case <-ctx.Done():
			t.Error("alive asked after the watchdog was stopped")
			return false
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, alive) }()

	answers := []bool{true, false, false, true, false}
	for _, a := range answers {
		(<-asked) <- a
		if a {
			if got := receive(t, c); got != "WATCHDOG=1" {
				t.Fatalf("got %q, want WATCHDOG=1", got)
			}
		}
	}
	// Make sure the last (false) tick has completed before stopping.
	answer := <-asked
	cancel()
	answer <- false
	<-done
	if extra := pending(t, c); len(extra) != 0 {
		t.Errorf("pings sent while the engine was not alive: %q", extra)
	}
}

func TestNoWatchdogWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", "")
	if _, ok := NewWatchdog(); ok {
		t.Error("NewWatchdog() enabled without NOTIFY_SOCKET")
	}
}
