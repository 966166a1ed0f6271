//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"

	"github.com/rekeyhq/rekey/install"
)

// unitName is the systemd unit rekey service installs.
const unitName = serviceName + ".service"

// shippedExecStart is the ExecStart line of install/rekey.service, which
// install replaces with this binary and the configuration path given.
const shippedExecStart = "ExecStart=/usr/bin/rekey run -config /etc/rekey"

// unitDir is where install writes the unit, relative to the root.
const unitDir = "/etc/systemd/system"

// packageUnitDirs hold a unit installed by the .deb or .rpm package.
var packageUnitDirs = []string{"/lib/systemd/system", "/usr/lib/systemd/system"}

// systemdManager installs the hardened unit install/rekey.service itself
// rather than through kardianos/service, whose systemd support writes its
// own unprivileged template and cannot work below a root directory.
type systemdManager struct {
	o         serviceOptions
	systemctl string
}

func newServiceManager(o serviceOptions) (serviceManager, error) {
	if o.root != "" {
		if st, err := os.Stat(o.root); err == nil && !st.IsDir() {
			return nil, refused("-root %s is not a directory", o.root)
		}
	}
	sc, err := exec.LookPath("systemctl")
	if err != nil {
		return nil, fmt.Errorf("systemctl not found: rekey service supports systemd only on Linux; with another init system, run `rekey run -config PATH` from a service definition of your own")
	}
	return &systemdManager{o: o, systemctl: sc}, nil
}

func (m *systemdManager) unitPath() string {
	return filepath.Join(m.o.root, unitDir, unitName)
}

// booted reports whether systemd manages this machine (sd_booted). With a
// root set, nothing runs there, whatever this machine's init is.
func (m *systemdManager) booted() bool {
	if m.o.root != "" {
		return false
	}
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

func (m *systemdManager) args(args []string) []string {
	if m.o.root != "" {
		return append([]string{"--root=" + m.o.root}, args...)
	}
	return args
}

// run runs systemctl, passing on what it prints (such as "Created symlink").
func (m *systemdManager) run(args ...string) error {
	args = m.args(args)
	out, err := exec.Command(m.systemctl, args...).CombinedOutput()
	if len(out) > 0 {
		m.o.stderr.Write(out)
	}
	if err != nil {
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// query runs systemctl for its output, which it returns trimmed.
func (m *systemdManager) query(args ...string) (string, error) {
	out, err := exec.Command(m.systemctl, m.args(args)...).Output()
	return strings.TrimSpace(string(out)), err
}

// findUnit returns the unit file systemd would load under the root, or "".
func (m *systemdManager) findUnit() string {
	for _, dir := range append([]string{unitDir}, packageUnitDirs...) {
		p := filepath.Join(m.o.root, dir, unitName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (m *systemdManager) packageUnit() string {
	for _, dir := range packageUnitDirs {
		p := filepath.Join(m.o.root, dir, unitName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (m *systemdManager) install() error {
	unit, err := renderUnit(install.SystemdUnit, m.o.executable, m.o.configPath)
	if err != nil {
		return err
	}
	path := m.unitPath()
	old, err := os.ReadFile(path)
	switch {
	case err == nil && string(old) == unit:
		fmt.Fprintf(m.o.stdout, "%s is up to date\n", path)
	case err == nil && !m.o.force:
		return refused("%s exists and differs from the unit this rekey writes (%s); rerun with -force to replace it. Keep local settings in a drop-in (systemctl edit rekey), which -force leaves alone", path, firstDifference(string(old), unit))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading the installed unit: %w", err)
	default:
		if err := writeFileAtomic(path, []byte(unit), 0o644); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("writing the unit: %w (run as root, e.g. with sudo)", err)
			}
			return fmt.Errorf("writing the unit: %w", err)
		}
		fmt.Fprintf(m.o.stdout, "wrote %s\n", path)
	}
	if m.booted() {
		if err := m.run("daemon-reload"); err != nil {
			return err
		}
	}
	if err := m.run("enable", unitName); err != nil {
		return err
	}
	fmt.Fprintf(m.o.stdout, "enabled %s: it starts at boot and runs\n  %s\n", unitName, execStartLine(m.o.executable, m.o.configPath))
	m.installNotes(old != nil && string(old) != unit)
	return nil
}

// installNotes warns about what would keep the service from starting.
func (m *systemdManager) installNotes(replaced bool) {
	if p := m.packageUnit(); p != "" {
		fmt.Fprintf(m.o.stdout, "note: %s overrides the packaged %s\n", m.unitPath(), p)
	}
	for _, dir := range []string{"/home/", "/root/", "/tmp/", "/var/tmp/", "/run/user/"} {
		if strings.HasPrefix(m.o.executable, dir) {
			fmt.Fprintf(m.o.stderr, "warning: the unit hides %s from the service (ProtectHome=, PrivateTmp=), so it cannot run %s: install the binary in /usr/local/bin and run its service install\n", dir, m.o.executable)
		}
	}
	if _, err := os.Stat(m.o.configPath); err != nil {
		fmt.Fprintf(m.o.stderr, "warning: the configuration %s does not exist yet: create it, then check it with: rekey validate %s\n", m.o.configPath, m.o.configPath)
	}
	if _, err := user.Lookup("rekey"); err != nil {
		fmt.Fprintf(m.o.stderr, "warning: the unit runs as user rekey, which does not exist: create it with: useradd --system --no-create-home --shell /usr/sbin/nologin rekey\n")
	}
	switch {
	case m.o.root != "":
		fmt.Fprintf(m.o.stdout, "-root is set: nothing was started or reloaded; start it on the target with: rekey service start\n")
	case !m.booted():
		fmt.Fprintf(m.o.stdout, "systemd is not running on this machine: the unit takes effect when it boots with systemd\n")
	case replaced && exec.Command(m.systemctl, "is-active", "--quiet", unitName).Run() == nil:
		fmt.Fprintf(m.o.stdout, "the service is running the previous unit: apply this one with: rekey service restart\n")
	default:
		fmt.Fprintf(m.o.stdout, "start it with: rekey service start\n")
	}
}

func (m *systemdManager) uninstall() error {
	path := m.unitPath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if p := m.packageUnit(); p != "" {
			return refused("%s was installed by a package, not by rekey service install: remove the package, or disable the service with: systemctl disable --now rekey", p)
		}
		fmt.Fprintf(m.o.stdout, "%s is not installed (no %s): nothing to do\n", unitName, path)
		return nil
	}
	disable := []string{"disable", unitName}
	if m.booted() {
		disable = []string{"disable", "--now", unitName}
	}
	if err := m.run(disable...); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing the unit: %w", err)
	}
	fmt.Fprintf(m.o.stdout, "disabled and removed %s\n", path)
	if m.booted() {
		if err := m.run("daemon-reload"); err != nil {
			return err
		}
	}
	if _, err := os.Stat(path + ".d"); err == nil {
		fmt.Fprintf(m.o.stdout, "kept the drop-ins in %s.d\n", path)
	}
	if p := m.packageUnit(); p != "" {
		fmt.Fprintf(m.o.stdout, "note: the packaged %s remains\n", p)
	}
	return nil
}

func (m *systemdManager) start() error   { return m.control("start", "started") }
func (m *systemdManager) stop() error    { return m.control("stop", "stopped") }
func (m *systemdManager) restart() error { return m.control("restart", "restarted") }

func (m *systemdManager) control(verb, done string) error {
	if m.findUnit() == "" {
		return fmt.Errorf("%w (no %s): install it with: rekey service install -config PATH", service.ErrNotInstalled, m.unitPath())
	}
	if m.o.root != "" {
		fmt.Fprintf(m.o.stdout, "-root is set: not running `systemctl %s %s`\n", verb, unitName)
		return nil
	}
	if !m.booted() {
		return fmt.Errorf("systemd is not running on this machine, so it cannot %s %s: run the daemon with: rekey run -config PATH", verb, unitName)
	}
	if err := m.run(verb, unitName); err != nil {
		return fmt.Errorf("%w; see: systemctl status rekey and journalctl -u rekey", err)
	}
	fmt.Fprintf(m.o.stdout, "%s %s\n", done, unitName)
	return nil
}

func (m *systemdManager) status() (service.Status, []string, error) {
	unit := m.findUnit()
	if unit == "" {
		return service.StatusUnknown, nil, service.ErrNotInstalled
	}
	enabled, _ := m.query("is-enabled", unitName)
	if enabled == "" {
		enabled = "unknown"
	}
	details := []string{fmt.Sprintf("unit: %s (%s)", unit, enabled)}
	if !m.booted() {
		why := "systemd is not running on this machine"
		if m.o.root != "" {
			why = "-root is set: nothing runs there"
		}
		return service.StatusStopped, append(details, why), nil
	}
	out, err := m.query("show", "-p", "LoadState", "-p", "ActiveState", "-p", "SubState", unitName)
	if err != nil {
		return service.StatusUnknown, nil, fmt.Errorf("systemctl show %s: %w", unitName, err)
	}
	props := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		props[k] = v
	}
	if props["LoadState"] == "not-found" {
		return service.StatusUnknown, nil, service.ErrNotInstalled
	}
	details = append(details, fmt.Sprintf("state: %s (%s)", props["ActiveState"], props["SubState"]))
	switch props["ActiveState"] {
	case "active", "reloading", "activating":
		return service.StatusRunning, details, nil
	case "failed":
		details = append(details, "it failed: see journalctl -u rekey")
	}
	return service.StatusStopped, details, nil
}

// renderUnit returns the shipped unit with its ExecStart line running exe
// with the configuration cfg.
func renderUnit(shipped, exe, cfg string) (string, error) {
	for _, p := range []string{exe, cfg} {
		if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", refused("the path %q contains control characters, which a unit cannot hold", p)
		}
	}
	old := "\n" + shippedExecStart + "\n"
	if strings.Count(shipped, old) != 1 {
		return "", fmt.Errorf("the embedded unit has no single %q line: rebuild rekey from an unmodified install/rekey.service", shippedExecStart)
	}
	return strings.Replace(shipped, old, "\n"+execStartLine(exe, cfg)+"\n", 1), nil
}

func execStartLine(exe, cfg string) string {
	return "ExecStart=" + systemdQuote(exe) + " run -config " + systemdQuote(cfg)
}

// systemdQuote quotes one word of an ExecStart command line: specifiers
// (%) and variables ($) are escaped, and a word with other characters than
// a path usually has is double-quoted with C escapes.
func systemdQuote(s string) string {
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:=@", r))
	})
	if plain {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$")
	return `"` + r.Replace(s) + `"`
}

// firstDifference describes the first line where have and want differ.
func firstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := range max(len(h), len(w)) {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is %q, this rekey writes %q", i+1, hl, wl)
		}
	}
	return "they differ"
}

// writeFileAtomic writes a file through a temporary file and a rename, so
// that systemd never reads half a unit.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".rekey.service.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
