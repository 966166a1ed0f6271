package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// TestIAMCrashAtEveryFailpoint crashes the engine at each failpoint in the
// middle of an IAM rotation (a panic abandons the engine, as in
// rotator/crash_test.go, and its journal is closed as a dying process's
// would be), then starts a new engine over the same journal, reconciles
// and rotates to completion. The policy writes Vault KV first, then Secrets
// Manager, and reloads a dependent that caches its credential. Checked
// after the crash, after reconciling and at the end: every key at IAM is
// known to the journal (orphans deleted), IAM was never asked for a third
// key, both sinks and the dependent hold a key that STS accepts; at the
// end exactly one key exists and it is the one served.
func TestIAMCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	v := startVault(t)
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			a := startAWS(h, 0)
			arn, seedID, seedSec := a.seedUser(iamUser)
			a.createSecret(iamSecretID, seedID, seedSec)
			kvPath := "crash/" + strings.ReplaceAll(fp, ".", "-")
			v.put(t, kvPath, map[string]string{"access_key_id": seedID, "secret_access_key": seedSec})
			dep := newAWSDependent(a, iamSecretID, arn, true)
			h.src = iamSpec{aws: a, vault: v, kvPath: kvPath, dependent: dep, vaultFirst: true, reload: true,
				soak: "200ms", depTimeout: "500ms"}.hcl(h)
			w := &crashWorld{h: h, a: a, v: v, kvPath: kvPath, dep: dep, arn: arn, seedID: seedID}

			if strings.HasPrefix(fp, "rollback.") {
				dep.failUnless = seedID
				dep.fail.Store(true) // the dependent fails with the new key: the first attempt rolls back
			}
			crashed := func() (crashed any) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() { crashed = recover() }()
				out := h.rotate(p, iamPolicy)
				t.Logf("the rotation ended without reaching the failpoint: %s at %s (%v)", out.Result, out.Step, out.Err)
				return nil
			}()
			if crashed == nil {
				t.Fatalf("failpoint %s was never reached", fp)
			}
			if crashed != "failpoint "+fp {
				t.Fatalf("the engine panicked with %v, not at the failpoint", crashed)
			}
			dep.fail.Store(false)
			w.check("after the crash")
			mark := len(a.srv.Ledger())

			p := h.start(nil)
			before := h.state(p, iamPolicy)
			committed := before.Active != nil && before.Active.Committed()
			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			st := h.state(p, iamPolicy)
			if st.Active != nil && !st.Active.Committed() {
				t.Fatalf("after reconciling, a rotation is still half-way before commit: step %s", st.Active.Step)
			}
			if committed && st.Active == nil && (len(st.History) == 0 || st.History[len(st.History)-1].Result != "done") {
				t.Fatalf("a committed rotation was not rolled forward: last result %s", st.LastResult)
			}
			w.check("after reconciling")
			w.knownKeys("after reconciling", st)
			if fp == "create.after" {
				if keys := a.srv.Keys(iamUser); len(keys) != 1 || keys[0].ID != seedID {
					t.Errorf("the key created before the crash was not deleted as an orphan: IAM holds %d keys", len(keys))
				}
				if n := ledgerCodes(a.ledgerSince(mark), "DeleteAccessKey")[""]; n != 1 {
					t.Errorf("reconciling deleted %d keys, want the 1 orphan", n)
				}
			}

			out := h.rotate(p, iamPolicy)
			if out.Result != "done" {
				t.Fatalf("rotation after recovery: %s at %s (%v)\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
			}
			w.check("at the end")
			st = h.state(p, iamPolicy)
			w.knownKeys("at the end", st)
			keys := a.srv.Keys(iamUser)
			if len(keys) != 1 || keys[0].ID != st.CurrentKeyID || keys[0].Status != "Active" {
				t.Errorf("at the end IAM holds %d keys, want exactly the journal's current key %s, active", len(keys), secret.Mask(st.CurrentKeyID))
			}
			if _, id, _, err := a.current(h.ctx, iamSecretID); err != nil || id != st.CurrentKeyID {
				t.Errorf("at the end AWSCURRENT holds %s, want the journal's current key %s (%v)", secret.Mask(id), secret.Mask(st.CurrentKeyID), err)
			}
			if d, _, err := v.get(h.ctx, h, kvPath, 0); err != nil || d["access_key_id"] != st.CurrentKeyID {
				t.Errorf("at the end Vault KV holds %s, want the journal's current key %s (%v)", secret.Mask(d["access_key_id"]), secret.Mask(st.CurrentKeyID), err)
			}
			if p := holder(a.stages(iamSecretID), "AWSPENDING"); p != "" {
				t.Errorf("AWSPENDING left on version %s", p)
			}
			if n := ledgerCodes(a.srv.Ledger(), "CreateAccessKey")["LimitExceeded"]; n > 0 {
				t.Errorf("IAM refused %d CreateAccessKey calls with LimitExceeded: rekey asked for a third key", n)
			}
			checks, reloads := dep.history()
			for _, c := range checks {
				if !c.ok {
					t.Errorf("the dependent saw its credential %s refused", secret.Mask(c.keyID))
				}
			}
			if reloads == 0 {
				t.Error("the dependent was never reloaded")
			}
		})
	}
}

// crashWorld checks the invariants of the crash matrix.
type crashWorld struct {
	h      *harness
	a      *awsEnv
	v      *vaultEnv
	kvPath string
	dep    *awsDependent
	arn    string
	seedID string
}

// check asserts that every place a dependent reads the key from serves a
// key AWS accepts, and that IAM holds at most two keys.
func (w *crashWorld) check(when string) {
	t := w.h.t
	t.Helper()
	keys := w.a.srv.Keys(iamUser)
	for _, k := range keys {
		w.h.keyID("an access key id of "+iamUser, k.ID)
	}
	if len(keys) > 2 {
		t.Errorf("%s: IAM holds %d keys", when, len(keys))
	}
	_, id, sec, err := w.a.current(w.h.ctx, iamSecretID)
	if err == nil {
		err = w.accepted(id, sec)
	}
	if err != nil {
		t.Errorf("%s: AWSCURRENT: %v", when, err)
	}
	d, _, err := w.v.get(w.h.ctx, w.h, w.kvPath, 0)
	if err == nil {
		err = w.accepted(d["access_key_id"], d["secret_access_key"])
	}
	if err != nil {
		t.Errorf("%s: Vault KV: %v", when, err)
	}
	if err := w.dep.check(w.h.ctx); err != nil {
		t.Errorf("%s: the dependent's credential: %v", when, err)
	}
}

func (w *crashWorld) accepted(id, sec string) error {
	arn, err := w.a.callerARN(w.h.ctx, id, sec)
	if err == nil && arn != w.arn {
		err = fmt.Errorf("belongs to %s", arn)
	}
	if err != nil {
		return fmt.Errorf("the served key %s is not accepted: %w", secret.Mask(id), err)
	}
	return nil
}

// knownKeys asserts that the journal knows every key IAM holds (the seed
// key, in use before rekey, is adopted by the first rotation that
// commits).
func (w *crashWorld) knownKeys(when string, st rotator.PolicyState) {
	t := w.h.t
	t.Helper()
	known := map[string]bool{w.seedID: true, st.CurrentKeyID: true}
	for _, id := range st.Retired {
		known[id] = true
	}
	if a := st.Active; a != nil {
		known[a.NewKeyID] = true
		for _, id := range a.OldKeyIDs {
			known[id] = true
		}
	}
	for _, k := range w.a.srv.Keys(iamUser) {
		if !known[k.ID] {
			t.Errorf("%s: IAM holds key %s, which the journal does not know (an orphan)", when, secret.Mask(k.ID))
		}
	}
}
