//go:build unix

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/dbtest"
)

const pgRevoke = `    after       = "1s"
    wait_unused = true
    soak        = "300ms"`

// TestPostgresAlternatingWithDependent rotates two alternating roles three
// times while the dependent opens a new connection every few milliseconds
// with whatever the file sink serves: it is never refused, the clone has
// the active role's privileges (the dependent's query needs them), the
// locked role is reused, and no role is ever dropped.
func TestPostgresAlternatingWithDependent(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	h := newHarness(t)
	w := newPGWorld(h, pg, "alt", true)
	h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(pg.Host, pg.Port, ""), "10s", pgRevoke)
	w.dep.run()
	p := h.start(nil)
	for i := 1; i <= 3; i++ {
		out := h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)", i, out.Result, out.Step, out.Err)
		}
		st := h.state(p, "db")
		want := []string{"alt_b@1", "alt_a@2", "alt_b@3"}[i-1]
		if st.CurrentKeyID != want {
			t.Errorf("rotation %d: current key %s, want %s", i, st.CurrentKeyID, want)
		}
		w.final(st)
	}
	w.dep.stop()
	w.dep.summary(t)
	if n, first := w.dep.authFailures(); n > 0 {
		t.Errorf("the dependent was refused %d times (first: %s)", n, first)
	}
}

// TestPostgresSingleRole rotates one role in place. Its password changes
// at create, before the sink serves the new one, so a dependent opening
// connections in that window is refused: the outage the single strategy
// documents. The test checks the rotation completes, the sink serves the
// working password, and the dependent recovers; it logs how many logins
// were refused.
func TestPostgresSingleRole(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	h := newHarness(t)
	w := newPGWorld(h, pg, "one", false)
	h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(pg.Host, pg.Port, ""), "10s", `    after = "0s"`)
	w.dep.run()
	p := h.start(nil)
	for i := 1; i <= 2; i++ {
		out := h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)", i, out.Result, out.Step, out.Err)
		}
		w.dep.mu.Lock()
		w.dep.authFails = nil // the documented window; the checks below are about after it
		w.dep.mu.Unlock()
		st := h.state(p, "db")
		if st.CurrentKeyID != fmt.Sprintf("one_a@%d", i) {
			t.Errorf("current key %s", st.CurrentKeyID)
		}
		w.final(st)
	}
	before := w.dep.ok.Load()
	deadline := time.Now().Add(30 * time.Second)
	for w.dep.ok.Load() < before+20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	w.dep.stop()
	w.dep.summary(t)
	if n, first := w.dep.authFailures(); n > 0 {
		t.Errorf("after the rotations the dependent was refused %d times (first: %s)", n, first)
	}
}

// TestPostgresRefusals: a wrong admin password and a missing role fail the
// rotation with a clear error, change nothing, and the dependent keeps
// working.
func TestPostgresRefusals(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	for _, tc := range []struct{ name, prefix, want string }{
		{"wrong admin password", "wrongadmin", "admin credential was refused"},
		{"missing role", "missing", "can log in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := newPGWorld(h, pg, tc.prefix, true)
			if tc.prefix == "wrongadmin" {
				w.adminPW = h.writeFile("wrong.pw", "wrong-admin-password\n")
				h.secret("a wrong admin password", "wrong-admin-password")
			} else {
				w.roles = []string{"missing_x", "missing_y"}
			}
			h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(pg.Host, pg.Port, ""), "10s", pgRevoke)
			w.dep.run()
			p := h.start(nil)
			out := h.rotate(p, "db")
			if out.Result == "done" || out.Err == nil || !strings.Contains(out.Err.Error(), tc.want) {
				t.Fatalf("rotation: %s (%v), want a failure saying %q", out.Result, out.Err, tc.want)
			}
			st := h.state(p, "db")
			if st.Active != nil || st.CurrentKeyID != "" {
				t.Fatalf("after the failure: %s, current %q", describeState(st), st.CurrentKeyID)
			}
			if tc.prefix == "wrongadmin" {
				w.check("after the failure", st, true)
				if r := w.role("wrongadmin_b"); r.exists {
					t.Error("a role was created with a refused admin credential")
				}
			}
			w.dep.stop()
			if n, first := w.dep.authFailures(); n > 0 && tc.prefix == "wrongadmin" {
				t.Errorf("the dependent was refused %d times (first: %s)", n, first)
			}
		})
	}
}

// TestPostgresRestartMidRotation kills PostgreSQL right after the new
// password is staged and starts it again a second later: the key probe
// retries through the outage, the rotation completes, no role is left
// that the journal does not know, and the dependent is never refused (it
// fails only to connect while the server is down).
func TestPostgresRestartMidRotation(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	h := newHarness(t)
	w := newPGWorld(h, pg, "restart", true)
	h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(pg.Host, pg.Port, ""), "30s", pgRevoke)
	var once sync.Once
	restarted := make(chan error, 1)
	h.observers = append(h.observers, rotator.ObserverFunc(func(_ context.Context, ev rotator.Event) {
		if ev.Step == rotator.StepStage && ev.Result == rotator.ResultOK {
			once.Do(func() {
				pg.Kill()
				go func() {
					time.Sleep(time.Second)
					restarted <- pg.Start()
				}()
			})
		}
	}))
	w.dep.run()
	p := h.start(nil)
	out := h.rotate(p, "db")
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	st := h.state(p, "db")
	t.Logf("first rotation: %s at %s (%v)", out.Result, out.Step, out.Err)
	if out.Result != "done" {
		w.check("after the interrupted rotation", st, true)
		out = h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation after the restart: %s at %s (%v)", out.Result, out.Step, out.Err)
		}
		st = h.state(p, "db")
	}
	w.final(st)
	w.dep.stop()
	w.dep.summary(t)
	if w.dep.otherFailures() == 0 {
		t.Error("the dependent never failed to connect: the server was not down")
	}
}

// TestPostgresConnectionCutDuringCreate cuts rekey's admin connection
// right after it sends the commit of the create transaction, so the role
// may have its new password while rekey hears nothing: the outcome is
// unknown. The rotation rolls back; the standby role, found by the
// rotation id in its comment, is locked, and the next rotation succeeds.
func TestPostgresConnectionCutDuringCreate(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	proxy := dbtest.StartProxy(t, fmt.Sprintf("%s:%d", pg.Host, pg.Port))
	h := newHarness(t)
	w := newPGWorld(h, pg, "cut", true)
	h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(proxy.Host, proxy.Port, ""), "10s", pgRevoke)
	w.dep.run()
	p := h.start(nil)
	proxy.CutAfter("commit")
	out := h.rotate(p, "db")
	if proxy.Cuts() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1", proxy.Cuts())
	}
	if out.Result != "rolled_back" {
		t.Fatalf("rotation with the connection cut: %s at %s (%v), want rolled_back", out.Result, out.Step, out.Err)
	}
	st := h.state(p, "db")
	w.check("after the cut", st, true)
	if r := w.role("cut_b"); r.canLogin {
		t.Fatalf("the standby role the cut create may have prepared can log in: %q", r.comment)
	}
	out = h.rotate(p, "db")
	if out.Result != "done" {
		t.Fatalf("rotation after the cut: %s at %s (%v)", out.Result, out.Step, out.Err)
	}
	w.final(h.state(p, "db"))
	w.dep.stop()
	w.dep.summary(t)
}
