package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/awsemu"
)

const (
	iamUser     = "svc-payments"
	iamPolicy   = "payments-aws"
	iamSecretID = "payments/aws"
	iamKVPath   = "payments/aws"
)

// iamSpec describes the policy of the IAM tests: the access key of
// svc-payments, written to Secrets Manager (and Vault KV when vault is
// set), tested with aws_sts, its dependent checked over HTTP.
type iamSpec struct {
	aws       *awsEnv
	vault     *vaultEnv
	dependent *awsDependent
	// kvPath is the vault_kv sink's path under secret/ (default iamKVPath).
	kvPath string
	// vaultFirst lists the vault_kv sink before aws_secretsmanager.
	vaultFirst bool
	// reload adds a reload hook that POSTs to the dependent's /reload.
	reload      bool
	soak        string
	stepTimeout string
	depTimeout  string
}

func (s iamSpec) hcl(h *harness) string {
	var b strings.Builder
	b.WriteString("state_dir = \"state\"\n\n")
	b.WriteString(s.aws.block())
	if s.vault != nil {
		b.WriteString(s.vault.block(h, ""))
	}
	fmt.Fprintf(&b, `
policy %q {
  every        = "30d"
  step_timeout = %q

  provider "aws_iam" {
    connection        = aws.emu
    user              = %q
    propagation_delay = %q
  }
`, iamPolicy, or(s.stepTimeout, "20s"), iamUser, s.aws.propagation())
	sm := fmt.Sprintf(`
  sink "aws_secretsmanager" {
    connection = aws.emu
    secret_id  = %q
  }
`, iamSecretID)
	kv := ""
	if s.vault != nil {
		kv = fmt.Sprintf(`
  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = %q
  }
`, or(s.kvPath, iamKVPath))
	}
	if s.vaultFirst {
		b.WriteString(kv + sm)
	} else {
		b.WriteString(sm + kv)
	}
	fmt.Fprintf(&b, `
  probe "aws_sts" {
    connection = aws.emu
    expect_arn = "arn:aws:iam::123456789012:user/%s"
    timeout    = "30s"
    interval   = "100ms"
  }
`, iamUser)
	if s.reload {
		exe, err := os.Executable()
		if err != nil {
			h.t.Fatal(err)
		}
		fmt.Fprintf(&b, `
  reload "exec" {
    command = [%q]
    env     = { %s = %q }
  }
`, exe, helperEnv, s.dependent.reloadURL())
	}
	if s.dependent != nil {
		fmt.Fprintf(&b, `
  probe "http" {
    target   = "dependent"
    url      = %q
    timeout  = %q
    interval = "100ms"
  }
`, s.dependent.healthURL(), or(s.depTimeout, "10s"))
	}
	fmt.Fprintf(&b, `
  revoke {
    after = "0s"
    soak  = %q
  }
}
`, or(s.soak, "0s"))
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestIAMRotation rotates an IAM access key into Secrets Manager and Vault
// KV: the new key must pass sts:GetCallerIdentity (retried while IAM is
// eventually consistent), a dependent that reads AWSCURRENT and calls STS
// with it must work before commit and through the soak (the old key
// deactivated), and the old key is deleted only then.
func TestIAMRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		// The delay off, for contrast: the protocol alone.
		{"consistent", awsemu.Immediate},
		{"eventually-consistent", 0}, // the emulator's default
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			v := startVault(t)
			a := startAWS(h, tc.delay)
			arn, oldID, oldSec := a.seedUser(iamUser)
			oldVersion := a.createSecret(iamSecretID, oldID, oldSec)
			v.put(t, iamKVPath, map[string]string{"access_key_id": oldID, "secret_access_key": oldSec})
			dep := newAWSDependent(a, iamSecretID, arn, false)
			h.src = iamSpec{aws: a, vault: v, dependent: dep, soak: "1s"}.hcl(h)
			p := h.start(nil)

			out := h.rotate(p, iamPolicy)
			if out.Result != "done" {
				t.Fatalf("rotation: %s at %s: %v\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
			}

			// Secrets Manager: AWSCURRENT holds the new key, AWSPREVIOUS the old.
			_, newID, newSec, err := a.current(h.ctx, iamSecretID)
			if err != nil {
				t.Fatal(err)
			}
			h.keyID("the new access key id", newID)
			if newID == oldID || newID == "" {
				t.Fatalf("AWSCURRENT still holds the old key %s", secret.Mask(oldID))
			}
			prevVersion, prevID, _, err := a.byStage(h.ctx, iamSecretID, "AWSPREVIOUS")
			if err != nil {
				t.Fatal(err)
			}
			if prevVersion != oldVersion || prevID != oldID {
				t.Errorf("AWSPREVIOUS is version %s with key %s, want the old version %s with key %s", prevVersion, secret.Mask(prevID), oldVersion, secret.Mask(oldID))
			}
			if p := holder(a.stages(iamSecretID), "AWSPENDING"); p != "" {
				t.Errorf("AWSPENDING left on version %s", p)
			}

			// Vault KV: the current version (2) holds the new key.
			data, kvVersion, err := v.get(h.ctx, h, iamKVPath, 0)
			if err != nil {
				t.Fatal(err)
			}
			if kvVersion != 2 || data["access_key_id"] != newID || data["secret_access_key"] != newSec {
				t.Errorf("Vault KV version %d holds key %s, want version 2 with the new key %s", kvVersion, secret.Mask(data["access_key_id"]), secret.Mask(newID))
			}

			// IAM: only the new key, active.
			keys := a.srv.Keys(iamUser)
			if len(keys) != 1 || keys[0].ID != newID || keys[0].Status != "Active" {
				t.Errorf("IAM keys of %s after the rotation: %+v, want only the new key, Active", iamUser, keys)
			}
			if got, err := a.callerARN(h.ctx, newID, newSec); err != nil || got != arn {
				t.Errorf("sts:GetCallerIdentity with the new key: %q, %v", got, err)
			}

			// The ledger: the old key was deactivated, then deleted, and
			// never used successfully after either.
			ledger := a.srv.Ledger()
			deactivated, deleted := -1, -1
			for i, c := range ledger {
				if c.Code != "" {
					continue
				}
				switch c.Action {
				case "UpdateAccessKey":
					if deactivated >= 0 {
						t.Errorf("UpdateAccessKey called twice (a re-activation?)")
					}
					deactivated = i
				case "DeleteAccessKey":
					if deleted >= 0 {
						t.Errorf("DeleteAccessKey called twice")
					}
					deleted = i
				}
			}
			if deactivated < 0 || deleted < deactivated {
				t.Fatalf("the ledger shows deactivation at %d and deletion at %d: the soak must deactivate the old key before it is deleted", deactivated, deleted)
			}
			for _, c := range ledger[deactivated+1:] {
				if c.AccessKeyID == oldID && c.Code == "" {
					t.Errorf("the old key was used successfully for %s after it was deactivated", c.Action)
				}
			}

			// Probing: the new key was tried until IAM accepted it.
			var failed, succeeded int
			for _, c := range ledger {
				if c.Action != "GetCallerIdentity" || c.AccessKeyID != newID {
					continue
				}
				if c.Code == "" {
					succeeded++
					continue
				}
				if succeeded > 0 {
					continue // after a success: the dependent's or the test's own calls
				}
				if c.Code != "InvalidClientTokenId" {
					t.Errorf("a probe of the new key failed with %s, want InvalidClientTokenId while IAM is not yet consistent", c.Code)
				}
				failed++
			}
			if tc.delay >= 0 && failed == 0 {
				t.Errorf("with a consistency delay of %s the probe never saw the new key refused: it was not retried", tc.delay)
			}
			if succeeded == 0 {
				t.Error("the new key never passed sts:GetCallerIdentity")
			}
			t.Logf("the new key was refused %d times before IAM accepted it", failed)

			// The old key is refused once IAM has propagated its deletion.
			if err := a.refused(h.ctx, oldID, oldSec); err != nil {
				t.Error(err)
			}

			// The dependent worked at verify and through the soak, always
			// with a key AWS accepted, and saw the new key.
			checks, _ := dep.history()
			sawNew := 0
			for _, c := range checks {
				if !c.ok {
					t.Errorf("the dependent saw its credential %s refused", secret.Mask(c.keyID))
				}
				if c.keyID == newID {
					sawNew++
				}
			}
			if sawNew < 2 {
				t.Errorf("the dependent used the new key %d times, want at least 2 (verify and soak)", sawNew)
			}
			evs := h.eventLog()
			for _, want := range []struct {
				step rotator.Step
				res  rotator.Result
			}{
				{rotator.StepTest, rotator.ResultOK}, {rotator.StepPromote, rotator.ResultOK}, {rotator.StepVerify, rotator.ResultOK},
				{rotator.StepCommit, rotator.ResultOK}, {rotator.StepDeactivate, rotator.ResultOK}, {rotator.StepSoak, rotator.ResultWaiting},
				{rotator.StepRevoke, rotator.ResultOK}, {rotator.StepDone, rotator.ResultOK},
			} {
				if !hasEvent(evs, want.step, want.res) {
					t.Errorf("no %s/%s event; events: %v", want.step, want.res, stepsOf(evs))
				}
			}
			if st := h.state(p, iamPolicy); st.CurrentKeyID != newID || st.Active != nil || len(st.Retired) != 0 {
				t.Errorf("journal: current %s, active %v, retired %v", secret.Mask(st.CurrentKeyID), st.Active, st.Retired)
			}
		})
	}
}

// TestIAMCapacity: the user already holds a second key that rekey's journal
// does not know. IAM allows two keys, so there is no room for a new one,
// and the unknown key must not be deleted: the rotation fails with an
// error that names the key, masked, and nothing is created or deleted.
func TestIAMCapacity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := startAWS(h, 0)
	arn, oldID, oldSec := a.seedUser(iamUser)
	a.createSecret(iamSecretID, oldID, oldSec)
	dep := newAWSDependent(a, iamSecretID, arn, false)
	h.src = iamSpec{aws: a, dependent: dep}.hcl(h)
	p := h.start(nil)
	if out := h.rotate(p, iamPolicy); out.Result != "done" {
		t.Fatalf("first rotation: %s: %v", out.Result, out.Err)
	}
	curVersion, curID, _, err := a.current(h.ctx, iamSecretID)
	if err != nil {
		t.Fatal(err)
	}
	h.keyID("the current access key id", curID)

	unknownID, unknownSec, err := a.srv.CreateAccessKeyFor(iamUser)
	if err != nil {
		t.Fatal(err)
	}
	h.secret("the unknown key's secret access key", unknownSec)
	h.keyID("the unknown access key id", unknownID)
	mark := len(a.srv.Ledger())

	out := h.rotate(p, iamPolicy)
	if out.Result != "failed" {
		t.Fatalf("rotation with no room for a key: %s at %s (%v), want failed", out.Result, out.Step, out.Err)
	}
	if !errors.Is(out.Err, plugin.ErrLimit) {
		t.Errorf("the error does not wrap plugin.ErrLimit: %v", out.Err)
	}
	msg := errText(out.Err)
	if !strings.Contains(msg, secret.Mask(unknownID)) {
		t.Errorf("the error does not name the unknown key %s: %s", secret.Mask(unknownID), msg)
	}
	if strings.Contains(msg, secret.Mask(curID)) {
		t.Errorf("the error names the current key %s as unknown: %s", secret.Mask(curID), msg)
	}
	for _, c := range a.ledgerSince(mark) {
		switch c.Action {
		case "CreateAccessKey", "DeleteAccessKey", "UpdateAccessKey":
			t.Errorf("the refused rotation called %s (%s)", c.Action, or(c.Code, "ok"))
		}
	}
	keys := a.srv.Keys(iamUser)
	if len(keys) != 2 || keys[0].ID != curID || keys[1].ID != unknownID || keys[0].Status != "Active" || keys[1].Status != "Active" {
		t.Errorf("IAM keys after the refused rotation: %+v, want the current and the unknown key, both Active", keys)
	}
	if v, id, _, err := a.current(h.ctx, iamSecretID); err != nil || v != curVersion || id != curID {
		t.Errorf("AWSCURRENT moved: version %s key %s (%v)", v, secret.Mask(id), err)
	}
	if !hasEvent(h.eventLog(), rotator.StepFailed, rotator.ResultFailed) {
		t.Errorf("no failed event: %v", stepsOf(h.eventLog()))
	}
	t.Logf("refusal: %s", msg)
}

// TestIAMRollback: the dependent fails with the new key (it answers 500),
// so the rotation rolls back: Secrets Manager and Vault KV serve the old
// key again (KV keeps its history: the old data is a new version), the new
// IAM key is deleted and the old one stays active.
func TestIAMRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := startVault(t)
	a := startAWS(h, 0)
	arn, oldID, oldSec := a.seedUser(iamUser)
	oldVersion := a.createSecret(iamSecretID, oldID, oldSec)
	v.put(t, iamKVPath, map[string]string{"access_key_id": oldID, "secret_access_key": oldSec})
	dep := newAWSDependent(a, iamSecretID, arn, false)
	dep.failUnless = oldID
	dep.fail.Store(true)
	h.src = iamSpec{aws: a, vault: v, dependent: dep, depTimeout: "1s"}.hcl(h)
	p := h.start(nil)

	out := h.rotate(p, iamPolicy)
	if out.Result != "rolled_back" {
		t.Fatalf("rotation with a failing dependent: %s at %s (%v), want rolled_back", out.Result, out.Step, out.Err)
	}
	if !strings.Contains(errText(out.Err), "probe http") {
		t.Errorf("the reason does not name the failing probe: %v", out.Err)
	}

	if v, id, _, err := a.current(h.ctx, iamSecretID); err != nil || v != oldVersion || id != oldID {
		t.Errorf("AWSCURRENT after rollback: version %s key %s (%v), want the old version %s", v, secret.Mask(id), err, oldVersion)
	}
	stages := a.stages(iamSecretID)
	if p := holder(stages, "AWSPENDING"); p != "" {
		t.Errorf("AWSPENDING left on version %s after rollback", p)
	}

	data, kvVersion, err := v.get(h.ctx, h, iamKVPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	if kvVersion != 3 || data["access_key_id"] != oldID || data["secret_access_key"] != oldSec {
		t.Errorf("Vault KV current version %d holds key %s, want version 3 with the old key %s", kvVersion, secret.Mask(data["access_key_id"]), secret.Mask(oldID))
	}
	promoted, _, err := v.get(h.ctx, h, iamKVPath, 2)
	if err != nil {
		t.Fatal(err)
	}
	newID := promoted["access_key_id"]
	h.keyID("the rolled back access key id", newID)
	if newID == "" || newID == oldID {
		t.Fatalf("Vault KV version 2 does not hold the new key (history lost?)")
	}

	keys := a.srv.Keys(iamUser)
	if len(keys) != 1 || keys[0].ID != oldID || keys[0].Status != "Active" {
		t.Errorf("IAM keys after rollback: %+v, want only the old key, Active", keys)
	}
	if err := a.refused(h.ctx, newID, promoted["secret_access_key"]); err != nil {
		t.Errorf("the rolled back key: %v", err)
	}
	if got, err := a.callerARN(h.ctx, oldID, oldSec); err != nil || got != arn {
		t.Errorf("the old key after rollback: %q, %v", got, err)
	}
	if !hasEvent(h.eventLog(), rotator.StepRolledBack, rotator.ResultRolledBack) {
		t.Errorf("no rolled_back event: %v", stepsOf(h.eventLog()))
	}
	if st := h.state(p, iamPolicy); st.Active != nil || st.CurrentKeyID != "" || st.LastResult != "rolled_back" {
		t.Errorf("journal after rollback: active %v, current %s, last result %s", st.Active, secret.Mask(st.CurrentKeyID), st.LastResult)
	}
}

// ledgerCodes counts the calls of an action by error code ("" = success).
func ledgerCodes(calls []awsemu.Call, action string) map[string]int {
	m := map[string]int{}
	for _, c := range calls {
		if c.Action == action {
			m[c.Code]++
		}
	}
	return m
}

// TestIAMDependentStillUsesOldKey: the policy forgot to reload the
// dependent, which keeps the old key it read at start. Verify passes (the
// old key still works), but once the old key is deactivated for the soak
// the dependent fails: the old key is re-activated at once and the policy
// is stuck. Rotate returns (it does not keep retrying), the scheduler's
// Advance leaves the old key alone, and once the operator has fixed the
// dependent, rekey rotate finishes the rotation.
func TestIAMDependentStillUsesOldKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Deactivation takes 1.5s to 3s to reach IAM's authentication, longer
	// than the soak: only the propagation allowance lets the soak see the
	// dependent fail before the old key is deleted.
	a := startAWS(h, 3*time.Second)
	arn, oldID, oldSec := a.seedUser(iamUser)
	a.createSecret(iamSecretID, oldID, oldSec)
	dep := newAWSDependent(a, iamSecretID, arn, true)
	h.src = iamSpec{aws: a, dependent: dep, soak: "1s", depTimeout: "1s"}.hcl(h)
	p := h.start(nil)

	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	out, err := p.e.Rotate(ctx, iamPolicy, rotator.RotateOptions{UntilDone: true})
	h.note(out.Err, err)
	if err != nil || out.Result != "stuck" {
		t.Fatalf("rotation whose dependent still uses the old key: %s at %s (%v, %v), want stuck\nevents: %v", out.Result, out.Step, out.Err, err, stepsOf(h.eventLog()))
	}
	if !hasEvent(h.eventLog(), rotator.StepSoak, rotator.ResultReactivated) {
		t.Errorf("no soak/reactivated event: %v", stepsOf(h.eventLog()))
	}
	keys := a.srv.Keys(iamUser)
	if len(keys) != 2 || keys[0].ID != oldID || keys[0].Status != "Active" {
		t.Fatalf("IAM keys after the soak failed: %+v, want the old key re-activated next to the new one", keys)
	}
	h.keyID("the new access key id", keys[1].ID)
	if n := ledgerCodes(a.srv.Ledger(), "UpdateAccessKey")[""]; n != 2 {
		t.Errorf("UpdateAccessKey called %d times, want 2 (deactivate, re-activate)", n)
	}
	if err := a.accepted(h.ctx, oldID, oldSec); err != nil {
		t.Errorf("the re-activated old key: %v", err)
	}
	if err := dep.check(h.ctx); err != nil {
		t.Errorf("the dependent does not work again after the re-activation: %v", err)
	}

	// The scheduler looks at the policy again: it is stuck, nothing happens.
	out, err = p.e.Advance(h.ctx, iamPolicy)
	h.note(out.Err, err)
	if err != nil || out.Result != "stuck" {
		t.Errorf("Advance of the stuck policy: %s at %s (%v, %v), want stuck", out.Result, out.Step, out.Err, err)
	}
	if n := ledgerCodes(a.srv.Ledger(), "UpdateAccessKey")[""]; n != 2 {
		t.Errorf("the stuck policy deactivated the old key again: UpdateAccessKey called %d times, want 2", n)
	}

	// The operator fixes the dependent, then runs rekey rotate.
	if err := dep.load(h.ctx); err != nil {
		t.Fatal(err)
	}
	out = h.rotate(p, iamPolicy)
	if out.Result != "done" {
		t.Fatalf("rekey rotate after fixing the dependent: %s at %s (%v)", out.Result, out.Step, out.Err)
	}
	if keys := a.srv.Keys(iamUser); len(keys) != 1 || keys[0].ID == oldID {
		t.Errorf("IAM keys at the end: %+v, want only the new key", keys)
	}
	if err := dep.check(h.ctx); err != nil {
		t.Errorf("the dependent at the end: %v", err)
	}
}
