//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
	"github.com/rekeyhq/rekey/testenv/etcdtest"
)

// haEnv is the quickstart run by several rekey instances that share a
// journal in a real etcd cluster: the same key service, sink and
// dependent, one state_dir (control socket, audit log) per instance.
type haEnv struct {
	q      *qsEnv
	etcd   *etcdtest.Cluster
	prefix string
	j      *etcdjournal.Journal
	procs  map[string]*daemon
	// gone are instances that exited (killed); their logs stay.
	gone []*daemon
}

var haSeq atomic.Int64

func newHA(t *testing.T, c *etcdtest.Cluster, ttl string, replace ...string) *haEnv {
	t.Helper()
	q := newQuickstart(t, "")
	base, err := os.ReadFile(q.path("rekey.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(q.path("rekey.hcl"))
	h := &haEnv{q: q, etcd: c, prefix: fmt.Sprintf("/rekey-ha-%d-%d/", os.Getpid(), haSeq.Add(1)), procs: map[string]*daemon{}}
	src := string(base)
	for i := 0; i+1 < len(replace); i += 2 {
		src = strings.Replace(src, replace[i], replace[i+1], 1)
	}
	src = strings.ReplaceAll(src, `"./`, `"`+q.dir+`/`)
	src = strings.ReplaceAll(src, `"state/app/`, `"`+q.dir+`/state/app/`)
	eps := `"` + strings.Join(c.Endpoints(), `", "`) + `"`
	for _, name := range []string{"a", "b", "c"} {
		s := strings.Replace(src, `state_dir = "state/rekey"`, fmt.Sprintf(`state_dir = %q`, q.path("state/rekey-"+name)), 1)
		s += fmt.Sprintf("\njournal \"etcd\" {\n  endpoints = [%s]\n  prefix    = %q\n  lease_ttl = %q\n  instance  = %q\n}\n", eps, h.prefix, ttl, name)
		if err := os.MkdirAll(h.dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.dir(name), "rekey.hcl"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: h.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	h.j = j
	return h
}

func (h *haEnv) dir(name string) string { return h.q.path("inst-" + name) }

func (h *haEnv) start(name string, env ...string) *daemon {
	h.q.t.Helper()
	d := &daemon{cmd: h.q.command(env, "run", "-config", h.dir(name)), logs: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		h.q.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	h.q.t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGCONT)
		_ = d.cmd.Process.Kill()
	})
	h.procs[name] = d
	return d
}

// exited records that an instance's process ended (its wait returned).
func (h *haEnv) exited(name string) {
	h.gone = append(h.gone, h.procs[name])
	delete(h.procs, name)
}

func (h *haEnv) logs() string {
	var b strings.Builder
	for _, d := range h.gone {
		fmt.Fprintf(&b, "=== exited instance\n%s\n", d.logs)
	}
	for name, d := range h.procs {
		fmt.Fprintf(&b, "=== instance %s\n%s\n", name, d.logs)
	}
	return b.String()
}

// owner returns the instance that owns the policies ("" when none).
func (h *haEnv) owner() string {
	o, err := etcdjournal.Owner(context.Background(), h.j.Client(), h.prefix)
	if err != nil {
		return ""
	}
	return o
}

// waitFor polls cond every 20 ms for up to limit.
func (h *haEnv) waitFor(what string, limit time.Duration, cond func() bool) {
	h.q.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			h.q.t.Fatalf("%s: not within %s; logs:\n%s", what, limit, h.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *haEnv) state() rotator.PolicyState {
	st, _, err := h.j.Get(context.Background(), "quickstart")
	if err != nil {
		return rotator.PolicyState{}
	}
	return st
}

// status is `rekey status -json` through the named instance.
func (h *haEnv) status(name string) rotator.PolicyStatus {
	h.q.t.Helper()
	out, code := h.q.rekey("status", "-json", "-config", h.dir(name))
	var st []rotator.PolicyStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		h.q.t.Fatalf("status through %s exited %d:\n%s", name, code, out)
	}
	return st[0]
}

func (h *haEnv) stopAll() {
	for _, d := range h.procs {
		_ = d.cmd.Process.Signal(syscall.SIGCONT)
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	for name, d := range h.procs {
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			h.q.t.Fatalf("instance %s did not stop after SIGTERM:\n%s", name, d.logs)
		}
	}
}

func killedBySIGKILL(err error) bool {
	ee, ok := err.(*exec.ExitError)
	return ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// haFailpoints are the failpoints the failover test kills the owner at by
// default: one before commit with a key created, one at commit, and the
// irreversible steps after it. REKEY_TEST_HA_ALL=1 runs every failpoint.
var haFailpoints = []string{"create.after", "promote.after", "commit.before", "commit.after", "deactivate.before", "revoke.before", "rollback.before"}

// TestHAOwnerKilledAtFailpoint: three instances; the owner is SIGKILLed at
// a failpoint; another instance takes over after the lease TTL, finishes
// or rolls back the rotation from the journal, and rotates again on
// demand. A watcher checks all along that the application's key is
// accepted, and the end state has exactly one key, the journal's.
func TestHAOwnerKilledAtFailpoint(t *testing.T) {
	c := etcdtest.Start(t, 3)
	fps := haFailpoints
	if os.Getenv("REKEY_TEST_HA_ALL") == "1" {
		fps = rotator.Failpoints
	}
	for _, fp := range fps {
		t.Run(fp, func(t *testing.T) {
			h := newHA(t, c, "2s")
			q := h.q
			old := q.seed()
			if strings.HasPrefix(fp, "rollback.") {
				q.breakNewKey()
			}
			stop := q.watch()
			a := h.start("a", rotator.FailpointEnv+"="+fp+"=kill")
			h.waitFor("a owns the policies", 20*time.Second, func() bool { return h.owner() == "a" })
			h.start("b")
			h.start("c")
			err := a.wait(t, 30*time.Second)
			killed := time.Now()
			h.exited("a")
			if !killedBySIGKILL(err) {
				t.Fatalf("instance a was not killed at %s (exit %v):\n%s", fp, err, h.logs())
			}
			os.Remove(q.path("state/app/broken"))
			var next string
			h.waitFor("another instance owns the policies", 30*time.Second, func() bool {
				next = h.owner()
				return next == "b" || next == "c"
			})
			took := time.Since(killed)
			h.waitFor("the interrupted rotation is finished", 30*time.Second, func() bool {
				st := h.state()
				return st.Active == nil && len(st.History) > 0
			})
			t.Logf("%s: instance %s took over %s after the kill; the rotation ended %s after it (%s)", fp, next, took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), h.state().History[0].Result)
			other := map[string]string{"b": "c", "c": "b"}[next]
			out, code := q.rekey("rotate", "-config", h.dir(other), "quickstart")
			if code == 0 || !strings.Contains(out, fmt.Sprintf("instance %q owns the policies", next)) {
				t.Fatalf("rotate through the non-owner %s exited %d, want a refusal naming %s:\n%s", other, code, next, out)
			}
			out, code = q.rekey("rotate", "-wait", "-config", h.dir(next), "quickstart")
			if code != 0 || !strings.Contains(out, "quickstart: done") {
				t.Fatalf("rotate through the owner %s exited %d:\n%s\n%s", next, code, out, h.logs())
			}
			h.waitFor("settled", 30*time.Second, func() bool { return h.state().Active == nil })
			st := h.status(other)
			h.stopAll()
			for _, v := range stop() {
				t.Error(v)
			}
			q.assertSettledState(st)
			if _, ok := q.keys()[old]; ok {
				t.Fatal("the seeded key was never revoked")
			}
			assertNoCanary(t, "the instances' logs", []byte(h.logs()))
			assertNoCanary(t, "rotate output", []byte(out))
		})
	}
}
