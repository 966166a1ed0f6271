package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

const appPolicy = "app-approle"

// appDependent is the application whose AppRole secret id rekey rotates:
// on each GET it logs in with its own reader AppRole, reads its role id and
// secret id from secret/app/approle, and logs in with them.
type appDependent struct {
	h              *harness
	v              *vaultEnv
	readerRoleID   string
	readerSecretID string
	srv            *httptest.Server

	mu     sync.Mutex
	logins []appLogin
}

type appLogin struct {
	secretID string
	err      error
}

func newAppDependent(h *harness, v *vaultEnv, readerRoleID, readerSecretID string) *appDependent {
	d := &appDependent{h: h, v: v, readerRoleID: readerRoleID, readerSecretID: readerSecretID}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	h.t.Cleanup(d.srv.Close)
	return d
}

func (d *appDependent) serve(w http.ResponseWriter, r *http.Request) {
	secretID, err := d.login(r.Context())
	d.mu.Lock()
	d.logins = append(d.logins, appLogin{secretID, err})
	d.mu.Unlock()
	if err != nil {
		http.Error(w, "the application cannot log in to Vault", http.StatusServiceUnavailable)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

func (d *appDependent) login(ctx context.Context) (string, error) {
	readerToken, err := d.v.srv.Login("approle", d.readerRoleID, d.readerSecretID)
	if err != nil {
		return "", fmt.Errorf("reader login: %w", err)
	}
	d.h.secret("the reader's token", readerToken)
	c, err := d.v.srv.Client.Clone()
	if err != nil {
		return "", err
	}
	c.SetToken(readerToken)
	s, err := c.KVv2("secret").Get(ctx, "app/approle")
	if err != nil {
		return "", fmt.Errorf("reading secret/app/approle: %w", err)
	}
	roleID, _ := s.Data["role_id"].(string)
	secretID, _ := s.Data["secret_id"].(string)
	d.h.secret("a secret id the application read", secretID)
	tok, err := d.v.srv.Login("approle", roleID, secretID)
	if err != nil {
		return secretID, fmt.Errorf("logging in with the credential from KV: %w", err)
	}
	d.h.secret("the application's token", tok)
	return secretID, nil
}

func (d *appDependent) history() []appLogin {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]appLogin(nil), d.logins...)
}

// TestAppRoleSecretIDRotation rotates the AppRole secret id of the role
// "app" into secret/app/approle. rekey logs in with its own AppRole; the
// vault_login probe logs in with the new secret id; the application reads
// the credential from KV with its own reader AppRole and logs in with it.
// Afterwards the old secret id is destroyed, the new one works, and the KV
// path's custom metadata names the rotation.
func TestAppRoleSecretIDRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := startVault(t)
	srv := v.srv
	srv.EnableAppRole(t, "approle")
	srv.WritePolicy(t, "rekey", `
path "secret/data/app/approle"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/app/approle" { capabilities = ["create", "read", "update", "patch"] }
path "secret/delete/app/approle"   { capabilities = ["update"] }
path "auth/approle/role/app/role-id"              { capabilities = ["read"] }
path "auth/approle/role/app/secret-id"            { capabilities = ["update", "list"] }
path "auth/approle/role/app/secret-id-accessor/*" { capabilities = ["update"] }
`)
	srv.WritePolicy(t, "reader", `path "secret/data/app/approle" { capabilities = ["read"] }`)
	srv.WritePolicy(t, "app", `path "secret/data/app/config" { capabilities = ["read"] }`)
	v.put(t, "app/config", map[string]string{"feature": "on"})
	rekeyRoleID := srv.CreateRole(t, "approle", "rekey", map[string]any{"token_policies": "rekey"})
	rekeySecretID, _ := srv.NewSecretID(t, "approle", "rekey")
	readerRoleID := srv.CreateRole(t, "approle", "reader", map[string]any{"token_policies": "reader"})
	readerSecretID, _ := srv.NewSecretID(t, "approle", "reader")
	appRoleID := srv.CreateRole(t, "approle", "app", map[string]any{"token_policies": "app"})
	oldSecretID, oldAccessor := srv.NewSecretID(t, "approle", "app")
	for what, s := range map[string]string{"rekey's secret id": rekeySecretID, "the reader's secret id": readerSecretID, "the old secret id": oldSecretID} {
		h.secret(what, s)
	}
	h.keyID("the old secret id accessor", oldAccessor)
	v.put(t, "app/approle", map[string]string{"role_id": appRoleID, "secret_id": oldSecretID})
	app := newAppDependent(h, v, readerRoleID, readerSecretID)
	if _, err := app.login(h.ctx); err != nil {
		t.Fatalf("the application does not work before the rotation: %v", err)
	}

	auth := fmt.Sprintf("auth \"approle\" {\n    role_id_file   = %q\n    secret_id_file = %q\n  }",
		h.writeFile("rekey-role-id", rekeyRoleID), h.writeFile("rekey-secret-id", rekeySecretID))
	h.src = "state_dir = \"state\"\n\n" + v.block(h, auth) + fmt.Sprintf(`
policy %q {
  every        = "7d"
  step_timeout = "20s"

  provider "vault_approle_secret_id" {
    connection = vault.main
    role_name  = "app"
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "app/approle"
  }

  probe "vault_login" {
    connection = vault.main
    read_path  = "secret/data/app/config"
    timeout    = "10s"
    interval   = "100ms"
  }

  probe "http" {
    target   = "dependent"
    url      = %q
    timeout  = "10s"
    interval = "100ms"
  }

  revoke {
    after = "0s"
  }
}
`, appPolicy, app.srv.URL+"/healthz")
	p := h.start(nil)
	out := h.rotate(p, appPolicy)
	if out.Result != "done" {
		t.Fatalf("rotation: %s at %s: %v\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
	}
	if c, ok := p.cfg.Connections.Get(vault.Kind, "main"); ok {
		if cl, err := c.(*vault.Conn).Client(h.ctx); err == nil {
			h.secret("rekey's own Vault token", cl.Token())
		}
	}

	data, kvVersion, err := v.get(h.ctx, h, "app/approle", 0)
	if err != nil {
		t.Fatal(err)
	}
	newSecretID := data["secret_id"]
	h.secret("the new secret id", newSecretID)
	if kvVersion != 2 || data["role_id"] != appRoleID || newSecretID == "" || newSecretID == oldSecretID {
		t.Fatalf("secret/app/approle version %d does not hold a new secret id for the role", kvVersion)
	}
	if _, err := srv.Login("approle", appRoleID, oldSecretID); err == nil {
		t.Error("the old secret id still logs in")
	}
	if tok, err := srv.Login("approle", appRoleID, newSecretID); err != nil {
		t.Errorf("the new secret id does not log in: %v", err)
	} else {
		h.secret("a token of the new secret id", tok)
	}
	list, err := srv.Client.Logical().ListWithContext(h.ctx, "auth/approle/role/app/secret-id")
	if err != nil || list == nil {
		t.Fatalf("listing the secret ids of app: %v", err)
	}
	accessors, _ := list.Data["keys"].([]any)
	if len(accessors) != 1 || accessors[0] == oldAccessor {
		t.Errorf("the role app has secret id accessors %v, want only the new one", accessors)
	}
	for _, a := range accessors {
		s, _ := a.(string)
		h.keyID("a secret id accessor of app", s)
	}

	md := v.metadata(t, "app/approle")
	want := map[string]string{"rekey_policy": appPolicy, "rekey_generation": "1", "rekey_rotation_id": out.RotationID}
	for k, w := range want {
		if got := fmt.Sprint(md.CustomMetadata[k]); got != w {
			t.Errorf("custom_metadata %s = %q, want %q", k, got, w)
		}
	}

	sawNew := false
	for _, l := range app.history() {
		if l.err != nil {
			t.Errorf("the application failed to log in: %v", l.err)
		}
		sawNew = sawNew || l.secretID == newSecretID
	}
	if !sawNew {
		t.Error("the application was never checked with the new secret id")
	}
}

// TestVaultSealedDuringRotation seals Vault as the new IAM key passes its
// test, just before promotion. Promoting to Vault KV fails after retrying
// for step_timeout, and the rotation rolls back: Secrets Manager (promoted
// just before) is restored at once, but Vault cannot be, so the rollback is
// left pending and the new key is kept: Vault's state is unknown and might
// serve it. Once Vault is unsealed, Advance finishes the rollback, and a new
// rotation succeeds.
func TestVaultSealedDuringRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := startVault(t)
	a := startAWS(h, 0)
	_, oldID, oldSec := a.seedUser(iamUser)
	oldVersion := a.createSecret(iamSecretID, oldID, oldSec)
	v.put(t, iamKVPath, map[string]string{"access_key_id": oldID, "secret_access_key": oldSec})
	var sealed atomic.Bool
	h.observers = append(h.observers, rotator.ObserverFunc(func(_ context.Context, ev rotator.Event) {
		if ev.Step == rotator.StepTest && ev.Result == rotator.ResultOK && sealed.CompareAndSwap(false, true) {
			v.srv.Seal(t)
		}
	}))
	h.src = iamSpec{aws: a, vault: v, stepTimeout: "3s"}.hcl(h)
	p := h.start(nil)

	out := h.rotate(p, iamPolicy)
	if !sealed.Load() {
		t.Fatalf("the test step never passed: %s (%v)", out.Result, out.Err)
	}
	if out.Result != "failed" || out.Step != rotator.StepRollback {
		t.Fatalf("rotation with Vault sealed: %s at %s (%v), want failed at rollback (pending)", out.Result, out.Step, out.Err)
	}
	t.Logf("outcome with Vault sealed: %v", out.Err)
	if s, err := v.srv.Sealed(h.ctx); err != nil || !s {
		t.Fatalf("vault is not sealed (%v)", err)
	}
	keys := a.srv.Keys(iamUser)
	if len(keys) != 2 || keys[0].ID != oldID || keys[0].Status != "Active" {
		t.Fatalf("IAM keys with the rollback pending: %+v, want the old key active and the new key kept", keys)
	}
	newID := keys[1].ID
	h.keyID("the new access key id", newID)
	if v, id, _, err := a.current(h.ctx, iamSecretID); err != nil || v != oldVersion || id != oldID {
		t.Errorf("AWSCURRENT with the rollback pending: version %s key %s (%v), want the old version restored", v, secret.Mask(id), err)
	}
	if p := holder(a.stages(iamSecretID), "AWSPENDING"); p != "" {
		t.Errorf("AWSPENDING left on version %s", p)
	}
	if st := h.state(p, iamPolicy); st.Active == nil || st.Active.Step != rotator.StepRollback || st.Active.NewKeyID != newID {
		t.Fatalf("journal with the rollback pending: %+v", st.Active)
	}
	if !hasEvent(h.eventLog(), rotator.StepRollback, rotator.ResultFailed) {
		t.Errorf("no rollback/failed event: %v", stepsOf(h.eventLog()))
	}

	v.srv.Unseal(t)
	out, err := p.e.Advance(h.ctx, iamPolicy)
	h.note(out.Err, err)
	if err != nil || out.Result != "rolled_back" {
		t.Fatalf("Advance after unsealing: %s at %s (%v, %v), want rolled_back", out.Result, out.Step, out.Err, err)
	}
	if keys := a.srv.Keys(iamUser); len(keys) != 1 || keys[0].ID != oldID || keys[0].Status != "Active" {
		t.Errorf("IAM keys after the rollback: %+v, want only the old key, active", keys)
	}
	data, kvVersion, err := v.get(h.ctx, h, iamKVPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	if data["access_key_id"] != oldID || data["secret_access_key"] != oldSec {
		t.Errorf("Vault KV version %d holds key %s after the rollback, want the old key %s", kvVersion, secret.Mask(data["access_key_id"]), secret.Mask(oldID))
	}
	if st := h.state(p, iamPolicy); st.Active != nil || st.LastResult != "rolled_back" {
		t.Errorf("journal after the rollback: active %+v, last result %s", st.Active, st.LastResult)
	}

	out = h.rotate(p, iamPolicy)
	if out.Result != "done" {
		t.Fatalf("rotation after unsealing: %s at %s (%v)", out.Result, out.Step, out.Err)
	}
	_, curID, _, err := a.current(h.ctx, iamSecretID)
	if err != nil {
		t.Fatal(err)
	}
	h.keyID("the access key id of the second rotation", curID)
	if data, _, err := v.get(h.ctx, h, iamKVPath, 0); err != nil || data["access_key_id"] != curID || curID == oldID {
		t.Errorf("after the second rotation Vault KV holds %s and AWSCURRENT %s, want the same new key (%v)", secret.Mask(data["access_key_id"]), secret.Mask(curID), err)
	}
}
