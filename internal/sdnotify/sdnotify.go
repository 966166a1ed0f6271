// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) so that `rekey run` can be a Type=notify service: it tells
// the service manager when it is ready, reloading or stopping, publishes a
// one-line status, and pings the watchdog while the engine loop is healthy.
//
// Only the standard library is used. Every function is a no-op that returns
// nil when $NOTIFY_SOCKET is unset, so the daemon runs the same way outside
// systemd.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Messages understood by systemd.
const (
	StateReady     = "READY=1"
	StateReloading = "RELOADING=1"
	StateStopping  = "STOPPING=1"
	StateWatchdog  = "WATCHDOG=1"
)

// ErrUnsupportedSocket reports a $NOTIFY_SOCKET address that is neither a
// file system path nor an abstract socket name (systemd 254+ also allows
// vsock addresses, which rekey does not need).
var ErrUnsupportedSocket = errors.New("unsupported NOTIFY_SOCKET address")

// Enabled reports whether a service manager is listening for
// notifications.
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// Notify sends state, one or more newline-separated VAR=VALUE assignments,
// to the socket named by $NOTIFY_SOCKET. A name starting with '@' is an
// abstract socket. Without $NOTIFY_SOCKET it does nothing and returns nil.
func Notify(state string) error {
	return send(os.Getenv("NOTIFY_SOCKET"), state)
}

func send(addr, state string) error {
	if addr == "" {
		return nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("notifying service manager at %q: %w", addr, ErrUnsupportedSocket)
	}
	// The net package maps a leading '@' to the abstract namespace on Linux.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notifying service manager: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notifying service manager: %w", err)
	}
	return nil
}

// Ready tells the service manager that start-up is complete: the
// configuration is loaded and the engine is running.
func Ready() error { return Notify(StateReady) }

// Reloading tells the service manager that a configuration reload has
// begun; send Ready when it is done (whether or not the new configuration
// was accepted). It includes MONOTONIC_USEC, which systemd 253 and later
// require to match a reload to its completion.
func Reloading() error { return Notify(reloadingMessage()) }

func reloadingMessage() string {
	if usec, ok := monotonicUsec(); ok {
		return StateReloading + "\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10)
	}
	return StateReloading
}

// Stopping tells the service manager that shutdown has begun.
func Stopping() error { return Notify(StateStopping) }

// Status publishes a one-line, human-readable status shown by
// `systemctl status`. Newlines are replaced by spaces. Never put secret
// values in it: it is visible to every local user.
func Status(s string) error {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	return Notify("STATUS=" + s)
}

// WatchdogInterval returns the watchdog timeout systemd set for this
// process (WatchdogSec=), from $WATCHDOG_USEC. ok is false when no watchdog
// is enabled, or when $WATCHDOG_PID names another process (the variables
// were inherited from a parent).
func WatchdogInterval() (time.Duration, bool) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(n) * time.Microsecond, true
}
