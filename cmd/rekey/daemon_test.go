package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a fake systemd notify socket that records datagrams.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	conn *net.UnixConn
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ns.conn = c
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return ns
}

func (ns *notifySocket) count(prefix string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := 0
	for _, m := range ns.msgs {
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
	}
	return n
}

func (ns *notifySocket) waitFor(t *testing.T, prefix string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ns.count(prefix) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	t.Fatalf("no %d× %q on the notify socket; got %q", n, prefix, ns.msgs)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonAsAService runs the daemon the way systemd does and checks what
// an operator relies on: readiness and watchdog pings on the notify socket,
// RELOADING/READY around SIGHUP, metrics and health endpoints, the audit log,
// webhook notifications, and STOPPING on SIGTERM.
func TestDaemonAsAService(t *testing.T) {
	var hooks sync.Mutex
	var delivered []map[string]any
	failFirst := 1
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		hooks.Lock()
		defer hooks.Unlock()
		if failFirst > 0 {
			failFirst--
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		delivered = append(delivered, m)
	}))
	defer hook.Close()
	listen := freePort(t)
	q := newQuickstart(t, fmt.Sprintf(`
  notify "webhook" {
    url = %q
    on  = ["success"]
  }`, hook.URL))
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(fmt.Sprintf("server {\n  listen = %q\n}\n", listen)+string(cfg)), 0o644)
	q.seed()
	ns := newNotifySocket(t)
	d := q.startDaemon("NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	ns.waitFor(t, "READY=1", 1)
	ns.waitFor(t, "STATUS=1 policy; next rotation quickstart in ", 1)
	ns.waitFor(t, "WATCHDOG=1", 3)
	st := q.waitSettled(d)
	if st.LastResult != "done" {
		t.Fatalf("first rotation: %+v\n%s", st, d.logs)
	}

	base := "http://" + listen
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	waitMetric := func(want string) string {
		t.Helper()
		var body string
		for range 100 {
			_, body = get(t, base+"/metrics")
			if strings.Contains(body, want) {
				return body
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("metrics never showed %q:\n%s", want, body)
		return ""
	}
	body := waitMetric(`rekey_rotations_total{policy="quickstart",result="success"} 1`)
	for _, want := range []string{"rekey_build_info{", "rekey_config_last_reload_successful 1", `rekey_rotation_last_success_timestamp_seconds{policy="quickstart"}`,
		`rekey_rotation_next_timestamp_seconds{policy="quickstart"}`, `rekey_key_age_seconds{policy="quickstart"}`, `rekey_policy_stuck{policy="quickstart"} 0`, `rekey_rotation_step_duration_seconds_bucket{kind="exec",step="promote"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	assertNoCanary(t, "metrics", []byte(body))

	// An invalid reload is rejected: the metric says so, the daemon runs on.
	good, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(good), `every = "1h"`, `every = "1h"`+"\n  evry = 3", 1)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	ns.waitFor(t, "RELOADING=1", 1)
	ns.waitFor(t, "READY=1", 2)
	waitMetric("rekey_config_last_reload_successful 0")
	os.WriteFile(q.path("rekey.hcl"), good, 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	ns.waitFor(t, "RELOADING=1", 2)
	waitMetric("rekey_config_last_reload_successful 1")

	// The webhook got the success event after one failed attempt.
	deadline := time.Now().Add(20 * time.Second)
	for {
		hooks.Lock()
		n := len(delivered)
		hooks.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	hooks.Lock()
	if len(delivered) != 1 || delivered[0]["event"] != "success" || delivered[0]["policy"] != "quickstart" || failFirst != 0 {
		t.Errorf("webhook deliveries: %v (failFirst %d)", delivered, failFirst)
	}
	hookJSON, _ := json.Marshal(delivered)
	hooks.Unlock()
	assertNoCanary(t, "webhook payloads", hookJSON)

	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.logs)
	}
	ns.waitFor(t, "STOPPING=1", 1)

	// The audit log: one JSON line per step transition, private, no values.
	auditPath := q.path("state/rekey/" + AuditFile)
	fi, err := os.Stat(auditPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit log: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(auditPath)
	assertNoCanary(t, "the audit log", raw)
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	steps := map[string]bool{}
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		for _, f := range []string{"v", "time", "policy", "rotation_id", "step", "result"} {
			if _, ok := rec[f]; !ok {
				t.Fatalf("audit record without %s: %s", f, sc.Text())
			}
		}
		steps[fmt.Sprint(rec["step"])] = true
	}
	for _, s := range []string{"create", "promote", "commit", "revoke", "done"} {
		if !steps[s] {
			t.Errorf("audit log has no %s event", s)
		}
	}
}

// TestSIGTERMParksAndRestartResumes stops the daemon in the middle of a
// soak (after commit): the journal keeps the step, and the next start
// resumes it, from the journaled times, to completion.
func TestSIGTERMParksAndRestartResumes(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `soak  = "500ms"`, `soak  = "3s"`, 1)), 0o644)
	old := q.seed()
	stop := q.watch()
	d := q.startDaemon()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := q.status()
		if st[0].InFlight != nil && st[0].InFlight.Step == "soak" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached soak: %+v\n%s", st, d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	st := q.status()
	if st[0].InFlight == nil || st[0].InFlight.Step != "soak" {
		t.Fatalf("after SIGTERM the journal should hold the soak: %+v", st[0])
	}
	if q.keys()[old].status != "inactive" {
		t.Fatalf("old key during the parked soak: %+v", q.keys()[old])
	}
	d2 := q.startDaemon()
	st2 := q.waitSettled(d2)
	if st2.LastResult != "done" || st2.Generation != 1 {
		t.Fatalf("after restart: %+v\n%s", st2, d2.logs)
	}
	d2.cmd.Process.Signal(syscall.SIGTERM)
	d2.wait(t, 20*time.Second)
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(st2)
}

// TestSIGTERMBeforeCommitRollsBack stops the daemon while the dependent
// probe is still failing (before commit): the rotation is rolled back
// before the process exits, and the old key is still served.
func TestSIGTERMBeforeCommitRollsBack(t *testing.T) {
	q := newQuickstart(t, "")
	cfg, _ := os.ReadFile(q.path("rekey.hcl"))
	os.WriteFile(q.path("rekey.hcl"), []byte(strings.Replace(string(cfg), `timeout  = "1s"`, `timeout  = "1m"`, 1)), 0o644)
	old := q.seed()
	q.breakNewKey()
	stop := q.watch()
	d := q.startDaemon()
	waitLog(t, d, `"step":"reload","result":"ok"`)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 40*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for _, v := range stop() {
		t.Error(v)
	}
	st := q.status()[0]
	if st.InFlight != nil || st.LastResult != "rolled_back" {
		t.Fatalf("after SIGTERM before commit: %+v\n%s", st, d.logs)
	}
	keys := q.keys()
	if len(keys) != 1 || keys[old].status != "active" {
		t.Fatalf("keys: %v", keys)
	}
}

// TestRefusesFilesOthersCanChange: a configuration file writable by others,
// or a credential file readable by others, stops the daemon at start with
// the command that fixes it.
func TestRefusesFilesOthersCanChange(t *testing.T) {
	q := newQuickstart(t, "")
	if err := os.Chmod(q.path("rekey.hcl"), 0o666); err != nil {
		t.Fatal(err)
	}
	out, code := q.rekey("run", "-config", q.dir)
	if code != ExitConfig || !strings.Contains(out, "chmod") {
		t.Fatalf("config 0666: exit %d\n%s", code, out)
	}
	os.Chmod(q.path("rekey.hcl"), 0o644)

	q2 := newQuickstart(t, fmt.Sprintf(`
  notify "webhook" {
    url              = "https://127.0.0.1:1/hook"
    signing_key_file = %q
  }`, "signing.key"))
	os.WriteFile(q2.path("signing.key"), []byte("k3y-material-0123456789abcdef"), 0o644)
	out, code = q2.rekey("run", "-config", q2.dir)
	if code != ExitConfig || !strings.Contains(out, "chmod 0600") || !strings.Contains(out, "signing.key") {
		t.Fatalf("signing key 0644: exit %d\n%s", code, out)
	}
}

// TestTwoInstancesAtOnce: a second daemon on the same state directory
// refuses to start (the journal lock), says why, and the first one goes on
// undisturbed.
func TestTwoInstancesAtOnce(t *testing.T) {
	q := newQuickstart(t, "")
	// Its dependent is never meant to fail: on a loaded machine the soak's
	// probe took more than the test quickstart's 1 s.
	q.dependentTimeout("20s")
	q.seed()
	stop := q.watch()
	d := q.startDaemon()
	q.waitSettled(d)
	out, code := q.rekey("run", "-config", q.dir)
	if code != ExitRuntime || !strings.Contains(out, "locked by another rekey process") {
		t.Fatalf("second daemon: exit %d\n%s", code, out)
	}
	if out, code := q.rekey("rotate", "-wait", "-config", q.dir, "quickstart"); code != 0 || !strings.Contains(out, "quickstart: done") {
		t.Fatalf("the first daemon stopped answering: %d\n%s", code, out)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(q.status()[0])
}
