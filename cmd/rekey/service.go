package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kardianos/service"
)

// serviceName names the service on every platform: the systemd unit
// rekey.service, the Windows service and Event Log source rekey.
const serviceName = "rekey"

var serviceActions = []string{"install", "uninstall", "start", "stop", "restart", "status"}

// serviceOptions is what a platform's service manager acts with.
type serviceOptions struct {
	// configPath is the absolute configuration path the service runs with.
	configPath string
	// executable is the absolute path of this rekey binary.
	executable string
	// force lets install replace a unit or service that differs.
	force bool
	// root, when set, is a directory standing in for / (systemd only):
	// nothing outside it is changed and no running service is touched.
	root           string
	stdout, stderr io.Writer
}

// serviceManager installs and controls rekey as a system service.
type serviceManager interface {
	install() error
	uninstall() error
	start() error
	stop() error
	restart() error
	// status reports service.StatusRunning or service.StatusStopped with
	// lines of detail, or an error wrapping service.ErrNotInstalled.
	status() (service.Status, []string, error)
}

// refusedError is a change the command declined to make; its message says
// how to make it anyway. It exits with ExitConfig.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func refused(format string, args ...any) error {
	return &refusedError{msg: fmt.Sprintf(format, args...)}
}

func (a *app) serviceUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: rekey service ACTION [options]

Manage rekey as a system service: a systemd unit on Linux, a service of the
service control manager on Windows, a launchd daemon on macOS.

Actions:
  install    install the service and enable it at boot (it is not started)
  uninstall  stop, disable and remove the service
  start      start the service
  stop       stop the service
  restart    restart the service
  status     print running, stopped or not installed

Options (before or after the action):
  -config PATH  the configuration the service runs with (install); default
                $REKEY_CONFIG, then %s
  -force        install: replace an installed unit or service that differs
  -binary PATH  install: the rekey binary the service runs; default this
                program (refused when it is a "go run" build)
  -root DIR     systemd: work below DIR instead of / (created if missing):
                write the unit there, run nothing; default $REKEY_SERVICE_ROOT

Exit codes: 0 ok; 1 usage error, or a change refused (install over a
different unit without -force, a go run binary); 3 could not run. status
exits 0 when the service is running and 3 when it is stopped or not
installed.
`, DefaultConfig)
}

func (a *app) cmdService(args []string) int {
	fs := a.flags("service")
	fs.Usage = func() { a.serviceUsage(a.stdout) }
	cfgPath := configFlag(fs)
	force := fs.Bool("force", false, "install: replace an installed unit or service that differs")
	binary := fs.String("binary", "", "install: the rekey binary the service runs (default: this program)")
	root := fs.String("root", os.Getenv("REKEY_SERVICE_ROOT"), "systemd: a directory standing in for / (created if missing)")
	if len(args) > 0 && args[0] == "help" {
		a.serviceUsage(a.stdout)
		return ExitOK
	}
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(a.stderr, "rekey service: name an action: install, uninstall, start, stop, restart or status")
		a.serviceUsage(a.stderr)
		return ExitConfig
	}
	action := fs.Arg(0)
	switch {
	case !slices.Contains(serviceActions, action):
		fmt.Fprintf(a.stderr, "rekey service: unknown action %q: use install, uninstall, start, stop, restart or status\n", action)
		return ExitConfig
	case fs.NArg() > 1:
		fmt.Fprintf(a.stderr, "rekey service %s: unexpected argument %q (one action at a time; options may come before or after it)\n", action, fs.Arg(1))
		return ExitConfig
	case action != "install" && (*force || *binary != ""):
		fmt.Fprintf(a.stderr, "rekey service %s: -force and -binary apply to install only\n", action)
		return ExitConfig
	}
	o := serviceOptions{force: *force, stdout: a.stdout, stderr: a.stderr}
	var err error
	if o.configPath, err = filepath.Abs(*cfgPath); err != nil {
		fmt.Fprintf(a.stderr, "rekey service %s: configuration path: %v\n", action, err)
		return ExitConfig
	}
	if *root != "" {
		if o.root, err = filepath.Abs(*root); err != nil {
			fmt.Fprintf(a.stderr, "rekey service %s: -root: %v\n", action, err)
			return ExitConfig
		}
	}
	if code := a.serviceBinary(&o, action, *binary); code != ExitOK {
		return code
	}
	if action == "install" && o.root != "" {
		if err := os.MkdirAll(o.root, 0o755); err != nil {
			fmt.Fprintf(a.stderr, "rekey service install: creating -root %s: %v\n", o.root, err)
			return ExitRuntime
		}
	}
	m, err := newServiceManager(o)
	if err != nil {
		return a.serviceError(action, err)
	}
	switch action {
	case "install":
		err = m.install()
	case "uninstall":
		err = m.uninstall()
	case "start":
		err = m.start()
	case "stop":
		err = m.stop()
	case "restart":
		err = m.restart()
	case "status":
		return a.serviceStatus(m)
	}
	if err != nil {
		return a.serviceError(action, err)
	}
	return ExitOK
}

// serviceBinary sets the binary the service runs: -binary, or this program.
// install refuses this program when it lives in Go's build cache (go run),
// which Go deletes: the unit would point at nothing.
func (a *app) serviceBinary(o *serviceOptions, action, binary string) int {
	if binary != "" {
		if !filepath.IsAbs(binary) {
			fmt.Fprintf(a.stderr, "rekey service install: -binary %s: give an absolute path (the unit runs it from /)\n", binary)
			return ExitConfig
		}
		o.executable = binary
		if inBuildCache(binary) {
			fmt.Fprintf(a.stderr, "warning: -binary %s is in Go's build cache, which Go cleans: install a built binary instead (go build -o rekey ./cmd/rekey)\n", binary)
		} else if _, err := os.Stat(binary); err != nil {
			fmt.Fprintf(a.stderr, "warning: -binary %s does not exist on this machine: the unit can start only where it does\n", binary)
		}
		return ExitOK
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey service %s: finding this program's path: %v\n", action, err)
		return ExitRuntime
	}
	o.executable = exe
	if action == "install" && inBuildCache(exe) {
		fmt.Fprintf(a.stderr, "rekey service install: this rekey runs from Go's build cache (%s, as under go run), which Go deletes: the unit would run nothing. Build it, then install that binary:\n  go build -o rekey ./cmd/rekey && sudo install -m 0755 rekey /usr/local/bin/rekey\n  sudo /usr/local/bin/rekey service install -config PATH\nor name the binary the unit runs with -binary /usr/local/bin/rekey\n", exe)
		return ExitConfig
	}
	return ExitOK
}

// inBuildCache reports whether path lies in a directory Go builds into
// (go run, go test: $TMPDIR/go-build*, $GOCACHE).
func inBuildCache(path string) bool {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

func (a *app) serviceError(action string, err error) int {
	fmt.Fprintf(a.stderr, "rekey service %s: %v\n", action, err)
	if _, ok := errors.AsType[*refusedError](err); ok {
		return ExitConfig
	}
	return ExitRuntime
}

// serviceStatus prints running, stopped or not installed, then details;
// like systemctl it exits 0 when running and 3 otherwise.
func (a *app) serviceStatus(m serviceManager) int {
	st, details, err := m.status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		fmt.Fprintln(a.stdout, "not installed")
	case err != nil:
		fmt.Fprintf(a.stderr, "rekey service status: %v\n", err)
		return ExitRuntime
	case st == service.StatusRunning:
		fmt.Fprintln(a.stdout, "running")
	default:
		fmt.Fprintln(a.stdout, "stopped")
	}
	for _, d := range details {
		fmt.Fprintf(a.stdout, "  %s\n", d)
	}
	if err == nil && st == service.StatusRunning {
		return ExitOK
	}
	return ExitRuntime
}
