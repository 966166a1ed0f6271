package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

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

Options:
  -config PATH  the configuration the service runs with (install); default
                $REKEY_CONFIG, then %s
  -force        install: replace an installed unit or service that differs

Exit codes: 0 ok; 1 usage error, or a change refused (install over a
different unit without -force); 3 could not run. status exits 0 when the
service is running and 3 when it is stopped or not installed.
`, DefaultConfig)
}

type serviceFlagValues struct {
	config *string
	force  *bool
	root   *string
}

func serviceFlags(fs *flag.FlagSet, action string) serviceFlagValues {
	v := serviceFlagValues{force: new(bool)}
	v.config = configFlag(fs)
	if action == "install" {
		fs.BoolVar(v.force, "force", false, "install: replace an installed unit or service that differs")
	}
	// Hidden: a directory standing in for / (systemd), for staging and tests.
	v.root = fs.String("root", os.Getenv("REKEY_SERVICE_ROOT"), "directory standing in for / (systemd only)")
	return v
}

func (a *app) cmdService(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(a.stderr, "rekey service: name an action: install, uninstall, start, stop, restart or status")
		a.serviceUsage(a.stderr)
		return ExitConfig
	}
	action := args[0]
	switch {
	case action == "-h" || action == "-help" || action == "--help" || action == "help":
		a.serviceUsage(a.stdout)
		return ExitOK
	case !slices.Contains(serviceActions, action):
		fmt.Fprintf(a.stderr, "rekey service: unknown action %q: use install, uninstall, start, stop, restart or status\n", action)
		return ExitConfig
	}
	fs := a.flags("service " + action)
	v := serviceFlags(fs, action)
	fs.Usage = func() { a.serviceUsage(fs.Output()) }
	if ok, code := parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "rekey service %s: unexpected argument %q (options go after the action: rekey service %s -config PATH)\n", action, fs.Arg(0), action)
		return ExitConfig
	}
	o := serviceOptions{force: *v.force, stdout: a.stdout, stderr: a.stderr}
	var err error
	if o.configPath, err = filepath.Abs(*v.config); err != nil {
		fmt.Fprintf(a.stderr, "rekey service %s: configuration path: %v\n", action, err)
		return ExitConfig
	}
	if *v.root != "" {
		if o.root, err = filepath.Abs(*v.root); err != nil {
			fmt.Fprintf(a.stderr, "rekey service %s: -root: %v\n", action, err)
			return ExitConfig
		}
	}
	if o.executable, err = os.Executable(); err != nil {
		fmt.Fprintf(a.stderr, "rekey service %s: finding this program's path: %v\n", action, err)
		return ExitRuntime
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
