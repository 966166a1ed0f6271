// Package install holds the files that install rekey as a service (the
// systemd unit, packaging, the tarball installer) and the tests that check
// them with the real tools.
package install

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` exposure score the
// unit may have (0 is fully locked down, 10 is unprotected).
const maxExposure = 2.0

// requireTool returns the path of a tool, or skips the test when it is
// absent; with REKEY_TEST_REQUIRE_SERVERS=1 (CI) it fails instead.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s is required (REKEY_TEST_REQUIRE_SERVERS=1): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// verifiableUnit writes a copy of rekey.service whose ExecStart names a
// binary that exists here, since `systemd-analyze verify` checks it and
// /usr/bin/rekey is not installed on a build machine.
func verifiableUnit(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("rekey.service")
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(src), "ExecStart=/usr/bin/rekey ", "ExecStart=/bin/true ", 1)
	if out == string(src) {
		t.Fatal("rekey.service has no ExecStart=/usr/bin/rekey line")
	}
	path := filepath.Join(t.TempDir(), "rekey.service")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnitVerifies(t *testing.T) {
	t.Parallel()
	sa := requireTool(t, "systemd-analyze")
	unit := verifiableUnit(t)
	cmd := exec.Command(sa, "verify", unit)
	cmd.Dir = filepath.Dir(unit)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("systemd-analyze verify printed warnings:\n%s", s)
	}
}

func TestUnitExposure(t *testing.T) {
	t.Parallel()
	sa := requireTool(t, "systemd-analyze")
	unit := verifiableUnit(t)
	cmd := exec.Command(sa, "security", "--offline=true", "--no-pager", unit)
	cmd.Dir = filepath.Dir(unit)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "Unknown command verb") || strings.Contains(string(out), "unrecognized option") {
		t.Skipf("this systemd-analyze cannot assess unit files offline (systemd 252+ can): %s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in the output (err %v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure level %.1f", score)
	if score >= maxExposure {
		t.Errorf("exposure level %.1f, want below %.1f:\n%s", score, maxExposure, out)
	}
}

// TestUnitSettings pins the settings the daemon and its documentation rely
// on, so that none is dropped by accident.
func TestUnitSettings(t *testing.T) {
	t.Parallel()
	f, err := os.Open("rekey.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		got[k] = append(got[k], v)
	}
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "ExecStart": "/usr/bin/rekey run -config /etc/rekey",
		"ExecReload": "/bin/kill -HUP $MAINPID", "WatchdogSec": "60", "Restart": "on-failure",
		"User": "rekey", "Group": "rekey", "StateDirectory": "rekey", "StateDirectoryMode": "0700",
		"ConfigurationDirectory": "rekey", "UMask": "0077", "LimitCORE": "0", "LimitMEMLOCK": "infinity",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"SystemCallArchitectures": "native", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
		"ProtectClock": "yes", "ProtectHostname": "yes", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
		"RestrictSUIDSGID": "yes", "RemoveIPC": "yes", "KeyringMode": "private", "ProcSubset": "pid",
		"ProtectProc": "invisible", "DevicePolicy": "closed", "WantedBy": "multi-user.target",
	}
	for k, v := range want {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want exactly one %s=%s", k, vs, k, v)
		}
	}
	if filters := got["SystemCallFilter"]; len(filters) == 0 || filters[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q, want an allow list starting with @system-service", filters)
	}
	for _, k := range []string{"PrivateNetwork", "IPAddressDeny"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is set: rekey needs the network", k)
		}
	}
}
