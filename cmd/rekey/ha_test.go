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

	clientv3 "go.etcd.io/etcd/client/v3"

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
	// listen is each instance's metrics address.
	listen map[string]string
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
	h := &haEnv{q: q, etcd: c, prefix: fmt.Sprintf("/rekey-ha-%d-%d/", os.Getpid(), haSeq.Add(1)), procs: map[string]*daemon{}, listen: map[string]string{}}
	src := string(base)
	for i := 0; i+1 < len(replace); i += 2 {
		src = strings.Replace(src, replace[i], replace[i+1], 1)
	}
	src = strings.ReplaceAll(src, `"./`, `"`+q.dir+`/`)
	src = strings.ReplaceAll(src, `"state/app/`, `"`+q.dir+`/state/app/`)
	eps := `"` + strings.Join(c.Endpoints(), `", "`) + `"`
	for _, name := range []string{"a", "b", "c"} {
		s := strings.Replace(src, `state_dir = "state/rekey"`, fmt.Sprintf(`state_dir = %q`, q.path("state/rekey-"+name)), 1)
		h.listen[name] = freePort(t)
		s += fmt.Sprintf("\nserver {\n  listen = %q\n}\n", h.listen[name])
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

// metric returns the line of the named metric in an instance's /metrics.
func (h *haEnv) metric(name, metric string) string {
	h.q.t.Helper()
	_, body := get(h.q.t, "http://"+h.listen[name]+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, metric+" ") {
			return line
		}
	}
	return ""
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
// irreversible steps after it. REKEY_TEST_HA_ALL=1 runs every failpoint,
// -short only commit.after.
var haFailpoints = []string{"create.after", "promote.after", "commit.before", "commit.after", "deactivate.before", "revoke.before", "rollback.before"}

// TestHAOwnerKilledAtFailpoint: three instances; the owner is SIGKILLed at
// a failpoint; another instance takes over after the lease TTL, finishes
// or rolls back the rotation from the journal, and rotates again on
// demand. A watcher checks all along that the application's key is
// accepted, and the end state has exactly one key, the journal's.
func TestHAOwnerKilledAtFailpoint(t *testing.T) {
	c := etcdtest.Start(t, 3)
	fps := haFailpoints
	switch {
	case os.Getenv("REKEY_TEST_HA_ALL") == "1":
		fps = rotator.Failpoints
	case testing.Short():
		fps = []string{"commit.after"}
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
			text, _ := q.rekey("status", "-config", h.dir(other))
			if !strings.Contains(text, "owner of every policy: "+next) || !strings.Contains(text, "instances alive: b, c") {
				t.Fatalf("status through %s does not name the owner %s and the instances alive (b, c):\n%s", other, next, text)
			}
			if text, _ := q.rekey("status", "-json", "-config", h.dir(other)); !strings.Contains(text, fmt.Sprintf(`"owner": %q`, next)) {
				t.Fatalf("status -json through %s does not name the owner %s:\n%s", other, next, text)
			}
			if got := h.metric(next, "rekey_ha_leader"); got != "rekey_ha_leader 1" {
				t.Fatalf("owner %s: %q", next, got)
			}
			if got := h.metric(other, "rekey_ha_leader"); got != "rekey_ha_leader 0" {
				t.Fatalf("standby %s: %q", other, got)
			}
			for _, n := range []string{next, other} {
				if code, body := get(t, "http://"+h.listen[n]+"/readyz"); code != 200 {
					t.Fatalf("/readyz of %s (owner %s): %d %s", n, next, code, body)
				}
			}
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

// auditSize is the size of an instance's audit log.
func (h *haEnv) auditSize(name string) int64 {
	fi, err := os.Stat(h.q.path("state/rekey-" + name + "/audit.log"))
	if err != nil {
		return -1
	}
	return fi.Size()
}

// TestHAPausedOwnerActsNoMore is the process pause that fencing exists
// for. The owner is stopped (SIGSTOP, sent by the dependent probe it runs
// in verify, so the pause lands inside a step, before commit) past its
// lease TTL; another instance takes over, rolls that rotation back and
// rotates again; then the old owner resumes (SIGCONT) exactly where the
// probe returns, with a commit next. It must write nothing (journal,
// audit log), serve nothing and revoke nothing: every journal write after
// the takeover comes from the new owner, the paused owner's audit log does
// not grow, the watcher sees a working key all along and the end state is
// the new owner's.
func TestHAPausedOwnerActsNoMore(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s", `soak  = "500ms"`, `soak  = "4s"`)
	q := h.q
	gate, _ := os.ReadFile(q.path("dependent-gate.sh"))
	pause := "if [ -e state/app/stop-parent ]; then rm -f state/app/stop-parent; kill -STOP $PPID; fi\n"
	if err := os.WriteFile(q.path("dependent-gate.sh"), []byte(strings.Replace(string(gate), "exec ./dependent.sh", pause+"exec ./dependent.sh", 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	q.seed()
	stop := q.watch()
	if err := os.WriteFile(q.path("state/app/stop-parent"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a := h.start("a")
	h.waitFor("a stops itself in verify", 30*time.Second, func() bool {
		_, err := os.Stat(q.path("state/app/stop-parent"))
		return os.IsNotExist(err)
	})
	st := h.state()
	if st.Active == nil || st.Active.Committed() {
		t.Fatalf("a paused outside its rotation before commit: %+v", st.Active)
	}
	first := st.Active.ID
	frozen := h.auditSize("a")
	h.start("b")
	h.start("c")
	var next string
	h.waitFor("another instance owns the policies", 30*time.Second, func() bool {
		next = h.owner()
		return next == "b" || next == "c"
	})
	h.waitFor("the new owner rolls a's rotation back and commits a rotation of its own", 40*time.Second, func() bool {
		st := h.state()
		return len(st.History) >= 1 && st.History[0].ID == first && st.Active != nil && st.Active.Committed()
	})
	from := h.revision()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitLog(t, a, "LOST OWNERSHIP")
	h.waitFor("the new owner's rotation is done", 30*time.Second, func() bool {
		st := h.state()
		return st.Active == nil && len(st.History) == 2
	})
	for _, w := range h.writesSince(from) {
		if w.Active != nil && w.Active.ID == first || len(w.History) == 0 || w.History[0].ID != first {
			t.Fatalf("a journal write after the resume is the paused owner's: %+v\n%s", w, a.logs)
		}
	}
	if got := h.auditSize("a"); got != frozen {
		t.Fatalf("the paused owner wrote its audit log after it resumed (%d bytes, %d when paused):\n%s", got, frozen, a.logs)
	}
	end := h.state()
	if end.History[0].Result != "rolled_back" || end.History[1].Result != "done" {
		t.Fatalf("journal after the pause: %+v (want a's rotation rolled back, the new owner's done)", end.History)
	}
	status := h.status(next)
	h.stopAll()
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(status)
	assertNoCanary(t, "the instances' logs", []byte(h.logs()))
}

// revision is the etcd revision now.
func (h *haEnv) revision() int64 {
	h.q.t.Helper()
	r, err := h.j.Client().Get(context.Background(), "/")
	if err != nil {
		h.q.t.Fatal(err)
	}
	return r.Header.Revision
}

// writesSince returns every value written to the policy's journal key
// after revision from, oldest first (etcd keeps the history).
func (h *haEnv) writesSince(from int64) []rotator.PolicyState {
	h.q.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := h.prefix + "policies/quickstart"
	cur, err := h.j.Client().Get(ctx, key)
	if err != nil || len(cur.Kvs) == 0 {
		h.q.t.Fatalf("reading %s: %v", key, err)
	}
	last := cur.Kvs[0].ModRevision
	if last <= from {
		return nil
	}
	var out []rotator.PolicyState
	for resp := range h.j.Client().Watch(ctx, key, clientv3.WithRev(from+1)) {
		for _, ev := range resp.Events {
			var st rotator.PolicyState
			if err := json.Unmarshal(ev.Kv.Value, &st); err != nil {
				h.q.t.Fatal(err)
			}
			out = append(out, st)
			if ev.Kv.ModRevision >= last {
				return out
			}
		}
		if err := resp.Err(); err != nil {
			h.q.t.Fatal(err)
		}
	}
	h.q.t.Fatal("the watch of the journal key ended early")
	return nil
}

// TestHAQuorumLoss: with two of three etcd members stopped, the owner
// loses its lease, stops acting and says so loudly; no instance rotates
// (a rotation asked is refused); once the members are back an instance
// owns the policies again and rotates.
func TestHAQuorumLoss(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s")
	q := h.q
	q.seed()
	stop := q.watch()
	for _, n := range []string{"a", "b", "c"} {
		h.start(n)
	}
	h.waitFor("the first rotation is done", 30*time.Second, func() bool {
		st := h.state()
		return st.Active == nil && len(st.History) == 1 && st.History[0].Result == "done"
	})
	owner := h.owner()
	if owner == "" {
		t.Fatal("no owner")
	}
	keysBefore := q.keys()
	c.StopMember(1)
	c.StopMember(2)
	waitLogWithin(t, h.procs[owner], "LOST OWNERSHIP", 20*time.Second)
	if got := h.metric(owner, "rekey_ha_lease_losses_total"); got != "rekey_ha_lease_losses_total 1" {
		t.Fatalf("the owner's lease-loss counter after quorum loss: %q", got)
	}
	if got := h.metric(owner, "rekey_ha_leader"); got != "rekey_ha_leader 0" {
		t.Fatalf("the owner's leader gauge after quorum loss: %q", got)
	}
	out, code := q.rekey("rotate", "-config", h.dir(owner), "quickstart")
	if code == 0 {
		t.Fatalf("a rotation succeeded without an etcd quorum:\n%s", out)
	}
	if !strings.Contains(out, "no longer owns") && !strings.Contains(out, "etcd") {
		t.Fatalf("rotate without quorum does not say why it refused:\n%s", out)
	}
	for n, d := range h.procs {
		if !strings.Contains(d.logs.String(), "NOT ACTING") && n != owner {
			waitLogWithin(t, d, "NOT ACTING", 20*time.Second)
		}
	}
	if got := q.keys(); len(got) != len(keysBefore) {
		t.Fatalf("keys changed without quorum: %v -> %v", keysBefore, got)
	}
	c.StartMember(t, 1)
	c.StartMember(t, 2)
	if err := c.WaitHealthy(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The lease of the owner that lost quorum is extended by etcd's new
	// leader, so it may hold the election for one more TTL: the owner
	// acts again once an instance wins afresh.
	var next string
	h.waitFor("an instance owns the policies again and rotates", 40*time.Second, func() bool {
		next = h.owner()
		if next == "" {
			return false
		}
		out, code = q.rekey("rotate", "-wait", "-config", h.dir(next), "quickstart")
		if code != 0 && !strings.Contains(out, "owns") {
			t.Fatalf("rotate after quorum returned, through %s: %d\n%s\n%s", next, code, out, h.logs())
		}
		return code == 0 && strings.Contains(out, "quickstart: done")
	})
	status := h.status(next)
	h.stopAll()
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(status)
	if status.Generation != 2 {
		t.Fatalf("generation %d after two rotations", status.Generation)
	}
}

func waitLogWithin(t *testing.T, d *daemon, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(d.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q within %s:\n%s", s, limit, d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAStaleCreateIsCleanedUp: providers cannot check a fencing token,
// so an owner paused inside its provider's create can have its key made
// after another instance took over and rolled the rotation back. Here the
// owner stops (SIGSTOP from the key service's create, which then waits)
// after journaling its intent; the new owner rolls the rotation back and
// finds no key; only then is the stale key created, tagged with the
// rolled-back rotation's id. The stale owner, resumed, journals nothing;
// the key is never served; the next rotation deletes it first (it is
// provably rekey's and unserved) instead of refusing for lack of room.
func TestHAStaleCreateIsCleanedUp(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s")
	q := h.q
	ks, _ := os.ReadFile(q.path("keyservice.sh"))
	hold := "create)\n\tif [ -e state/app/stop-create ]; then rm -f state/app/stop-create; kill -STOP $PPID; while [ ! -e state/app/go-create ]; do sleep 0.05; done; fi\n"
	if err := os.WriteFile(q.path("keyservice.sh"), []byte(strings.Replace(string(ks), "create)\n", hold, 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	q.seed()
	stop := q.watch()
	a := h.start("a")
	h.waitFor("a owns the policies and rotates once", 30*time.Second, func() bool {
		st := h.state()
		return h.owner() == "a" && st.Active == nil && len(st.History) == 1 && st.History[0].Result == "done"
	})
	h.start("b")
	h.start("c")
	if err := os.WriteFile(q.path("state/app/stop-create"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rot := q.command(nil, "rotate", "-config", h.dir("a"), "quickstart")
	rotOut := &lockedBuffer{}
	rot.Stdout, rot.Stderr = rotOut, rotOut
	if err := rot.Start(); err != nil {
		t.Fatal(err)
	}
	rotDone := make(chan error, 1)
	go func() { rotDone <- rot.Wait() }()
	t.Cleanup(func() { _ = rot.Process.Kill() })
	h.waitFor("a stops inside the provider's create", 30*time.Second, func() bool {
		_, err := os.Stat(q.path("state/app/stop-create"))
		return os.IsNotExist(err)
	})
	st := h.state()
	if st.Active == nil || st.Active.IntentAt.IsZero() || st.Active.NewKeyID != "" {
		t.Fatalf("a paused elsewhere than between its journaled intent and the key: %+v", st.Active)
	}
	stale := st.Active.ID
	var next string
	h.waitFor("another instance owns the policies and rolls a's rotation back", 30*time.Second, func() bool {
		next = h.owner()
		st := h.state()
		return (next == "b" || next == "c") && st.Active == nil && len(st.History) == 2 && st.History[1].ID == stale && st.History[1].Result == "rolled_back"
	})
	before := len(q.keys())
	if err := os.WriteFile(q.path("state/app/go-create"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the stale create makes its key", 20*time.Second, func() bool { return len(q.keys()) == before+1 })
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitLog(t, a, "LOST OWNERSHIP")
	select {
	case err := <-rotDone:
		if err == nil {
			t.Fatalf("the stale owner's rotate succeeded:\n%s", rotOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the stale owner's rotate did not return:\n%s\n%s", rotOut, a.logs)
	}
	if st := h.state(); st.Active != nil || len(st.History) != 2 {
		t.Fatalf("the stale owner journaled its key: %+v", st)
	}
	keys, cur := q.keys(), h.state().CurrentKeyID
	var orphan string
	for id := range keys {
		if id != cur {
			orphan = id
		}
	}
	if len(keys) != 2 || orphan == "" || h.keyRotation(orphan) != stale {
		t.Fatalf("want the current key and one stale key tagged %s: %v", stale, keys)
	}
	if v, _ := q.servedSecret(); v == keys[orphan].secret {
		t.Fatal("the stale key is served")
	}
	out, code := q.rekey("rotate", "-wait", "-config", h.dir(next), "quickstart")
	if code != 0 || !strings.Contains(out, "quickstart: done") {
		t.Fatalf("the next rotation through %s did not clean up the stale key: %d\n%s\n%s", next, code, out, h.logs())
	}
	if _, ok := q.keys()[orphan]; ok {
		t.Fatalf("the stale key %s is still at the key service", orphan)
	}
	status := h.status(next)
	h.stopAll()
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(status)
	assertNoCanary(t, "the instances' logs", []byte(h.logs()))
}

// keyRotation is the rotation id the key service tagged a key with.
func (h *haEnv) keyRotation(id string) string {
	b, _ := os.ReadFile(h.q.path("state/keystore/" + id + ".key"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rotation="); ok {
			return v
		}
	}
	return ""
}

// TestHAJournalWipedIsNotAFirstStart: a journal deleted from etcd (or
// replaced by another) is never taken for a first start: the instance that
// used it refuses to run and says what to do.
func TestHAJournalWipedIsNotAFirstStart(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s")
	q := h.q
	q.seed()
	h.start("a")
	h.waitFor("the first rotation is done", 30*time.Second, func() bool {
		st := h.state()
		return st.Active == nil && len(st.History) == 1
	})
	h.stopAll()
	h.exited("a")
	ctx := context.Background()
	if _, err := h.j.Client().Delete(ctx, h.prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	out, code := q.rekey("run", "-config", h.dir("a"))
	if code != ExitRuntime || !strings.Contains(out, "the journal is lost") || !strings.Contains(out, "etcd-journal.marker") {
		t.Fatalf("start after the journal was wiped from etcd: exit %d\n%s", code, out)
	}
	if _, err := h.j.Client().Put(ctx, h.prefix+"journal_id", "another"); err != nil {
		t.Fatal(err)
	}
	out, code = q.rekey("run", "-config", h.dir("a"))
	if code != ExitRuntime || !strings.Contains(out, "it was replaced") {
		t.Fatalf("start on another journal: exit %d\n%s", code, out)
	}
	out, code = q.rekey("journal", "recover", "-config", h.dir("a"))
	if code != ExitRuntime || !strings.Contains(out, "restore etcd from a snapshot") {
		t.Fatalf("journal recover with an etcd journal: exit %d\n%s", code, out)
	}
}

// TestHAJournalWipedUnderTheDaemon: the journal deleted from etcd under
// running instances stops their scheduling, and status, plan and rotate
// through an instance's socket exit 3 saying so and how to resume,
// instead of showing a state nothing schedules any more.
func TestHAJournalWipedUnderTheDaemon(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s")
	q := h.q
	q.seed()
	a := h.start("a")
	b := h.start("b")
	h.waitFor("the first rotation is done", 30*time.Second, func() bool {
		st := h.state()
		return st.Active == nil && len(st.History) == 1
	})
	if _, err := h.j.Client().Delete(context.Background(), h.prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*daemon{a, b} {
		waitLogWithin(t, d, "JOURNAL LOST", 20*time.Second)
	}
	for _, args := range [][]string{{"status"}, {"status", "-json"}, {"plan"}, {"rotate", "quickstart"}} {
		out, code := q.rekey(append(args, "-config", h.dir("a"))...)
		if code != ExitRuntime {
			t.Errorf("rekey %s with the etcd journal wiped: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		for _, want := range []string{"JOURNAL LOST", "stopped scheduling", "was deleted while rekey was running", "restore etcd from a snapshot"} {
			if !strings.Contains(out, want) {
				t.Errorf("rekey %s with the etcd journal wiped does not say %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
	if r, err := h.j.Client().Get(context.Background(), h.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil {
		t.Fatal(err)
	} else {
		for _, kv := range r.Kvs {
			if !strings.Contains(string(kv.Key), "/election/") && !strings.Contains(string(kv.Key), "/instances/") {
				t.Errorf("an instance wrote %s after the journal was wiped", kv.Key)
			}
		}
	}
	for name, d := range map[string]*daemon{"a": a, "b": b} {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		if err := d.wait(t, 20*time.Second); err == nil {
			t.Errorf("instance %s exited 0 after its journal was lost", name)
		}
	}
}

// TestHARollingRestart: while rotations run, an etcd member is stopped and
// started again, and every rekey instance in turn is stopped (SIGTERM) and
// started again, the owner included. Every rotation ends done, each
// exactly once (unique ids, generations one apart, no two overlapping), and
// the watcher sees a working key all along.
func TestHARollingRestart(t *testing.T) {
	c := etcdtest.Start(t, 3)
	h := newHA(t, c, "2s", `soak  = "500ms"`, `soak  = "2s"`)
	q := h.q
	q.seed()
	stop := q.watch()
	for _, n := range []string{"a", "b", "c"} {
		h.start(n)
	}
	settled := func(n int) func() bool {
		return func() bool {
			st := h.state()
			return st.Active == nil && len(st.History) == n
		}
	}
	h.waitFor("the first rotation is done", 30*time.Second, settled(1))
	for i, n := range []string{"a", "b", "c"} {
		var owner string
		h.waitFor("an owner", 30*time.Second, func() bool { owner = h.owner(); return owner != "" })
		if out, code := q.rekey("rotate", "-config", h.dir(owner), "quickstart"); code != 0 {
			t.Fatalf("rotate through %s: %d\n%s", owner, code, out)
		}
		if i == 0 {
			c.StopMember(2)
		}
		d := h.procs[n]
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		if err := d.wait(t, 30*time.Second); err != nil {
			t.Fatalf("instance %s after SIGTERM: %v\n%s", n, err, d.logs)
		}
		h.exited(n)
		if i == 0 {
			c.StartMember(t, 2)
		}
		h.start(n)
		h.waitFor(fmt.Sprintf("rotation %d is done", i+2), 40*time.Second, settled(i+2))
	}
	st := h.state()
	seen := map[string]bool{}
	for i, r := range st.History {
		if r.Result != "done" || seen[r.ID] || r.Generation != int64(i+1) {
			t.Fatalf("history %d: %+v (want done, unique, generation %d)", i, r, i+1)
		}
		seen[r.ID] = true
		if i > 0 && r.StartedAt.Before(st.History[i-1].FinishedAt) {
			t.Fatalf("rotations %d and %d overlap: %+v %+v", i, i+1, st.History[i-1], r)
		}
	}
	status := h.status(h.owner())
	h.stopAll()
	for _, v := range stop() {
		t.Error(v)
	}
	q.assertSettledState(status)
	assertNoCanary(t, "the instances' logs", []byte(h.logs()))
	all, err := h.j.Client().Get(context.Background(), h.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var kv []byte
	for _, x := range all.Kvs {
		kv = append(append(append(kv, x.Key...), x.Value...), '\n')
	}
	assertNoCanary(t, "the journal in etcd", kv)
	records := 0
	for _, n := range []string{"a", "b", "c"} {
		b, _ := os.ReadFile(q.path("state/rekey-" + n + "/audit.log"))
		assertNoCanary(t, "the audit log of "+n, b)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			records++
			if !strings.Contains(line, `"instance":"`+n+`"`) {
				t.Fatalf("an audit record of instance %s does not name it: %s", n, line)
			}
		}
	}
	if records == 0 {
		t.Fatal("no audit record in any instance's audit log")
	}
}
