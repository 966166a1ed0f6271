//go:build unix

package e2e

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/dbtest"
)

// TestPostgresCrashAtEveryFailpoint crashes the engine (a panic) at each
// failpoint in the middle of a rotation of two alternating PostgreSQL
// roles served through a file sink, while the dependent application opens
// a new connection every few milliseconds with whatever the file holds.
// For the rollback failpoints the first attempt is made to roll back by
// failing the dependent probe. A new engine then reconciles over the same
// journal and rotates to completion. Checked after the crash, after
// reconciling and at the end: every role that can log in holds a key the
// journal knows (after the crash, a standby prepared by the interrupted
// rotation may be known only by the rotation id in its comment;
// reconciling locks it), the credential the file serves logs in, and the
// dependent was never refused. At the end exactly one role can log in, it
// is the journal's current key, the file serves it, and no role was
// dropped.
func TestPostgresCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	pg := dbtest.StartPostgres(t)
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			w := newPGWorld(h, pg, "c_"+strings.NewReplacer(".", "_").Replace(fp), true)
			rollbackFirst := strings.HasPrefix(fp, "rollback.")
			depTimeout := "10s"
			if rollbackFirst {
				depTimeout = "500ms"
			}
			h.src = "state_dir = \"state\"\n" + w.policy("db", w.provider(pg.Host, pg.Port, ""), depTimeout, pgRevoke)
			_, w.dep.failUnless, _ = w.served()
			w.dep.fail.Store(rollbackFirst)
			w.dep.run()

			var canDeactivate bool
			crashed, first := func() (crashed any, out rotator.Outcome) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() { crashed = recover() }()
				_, canDeactivate = p.cfg.Policies[0].Provider.Provider.(providers.Deactivator)
				return nil, h.rotate(p, "db")
			}()
			if !canDeactivate {
				t.Fatal("alternating postgres roles can be deactivated (NOLOGIN)")
			}
			switch {
			case crashed == nil:
				t.Fatalf("failpoint %s was never reached: the rotation ended %s at %s (%v)", fp, first.Result, first.Step, first.Err)
			case crashed != "failpoint "+fp:
				t.Fatalf("the engine panicked with %v, not at the failpoint", crashed)
			}
			w.dep.fail.Store(false)

			p := h.start(nil)
			before := h.state(p, "db")
			w.check("after the crash", before, false)
			committed := before.Active != nil && before.Active.Committed()
			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			st := h.state(p, "db")
			switch {
			case st.Active != nil && !st.Active.Committed():
				t.Fatalf("after reconciling, a rotation is still half-way before commit: step %s", st.Active.Step)
			case committed && st.Active == nil && st.LastResult != "done":
				t.Fatalf("a committed rotation was not rolled forward: last result %s", st.LastResult)
			case before.Active != nil && !committed:
				if st.Active != nil || st.LastResult != "rolled_back" {
					t.Errorf("the rotation interrupted before commit was not rolled back: last result %s", st.LastResult)
				}
				if r := w.role(w.roles[1]); r.canLogin {
					t.Errorf("after rolling back the standby role can log in: %q", r.comment)
				}
				if user, _, err := w.served(); err != nil || user != w.roles[0] {
					t.Errorf("after rolling back the file serves %s (%v), not the seed role", user, err)
				}
			}
			w.check("after reconciling", st, true)
			t.Logf("%s: after the crash: %s; after reconciling: %s", fp, describeState(before), describeState(st))

			out := h.rotate(p, "db")
			if out.Result != "done" {
				t.Fatalf("rotation after recovery: %s at %s (%v)\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
			}
			w.final(h.state(p, "db"))
			w.dep.stop()
			w.dep.summary(t)
			if n, first := w.dep.authFailures(); n > 0 {
				t.Errorf("the dependent was refused %d times (first: %s)", n, first)
			}
		})
	}
}
