package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/vaultapprole"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// appCrashPolicy is the policy of the AppRole crash matrix; each subtest
// has its own journal, role and KV path.
const appCrashPolicy = "app-approle"

// appCrashConfigPath is what the rotated role's tokens may read; the
// vault_login probe reads it with the new secret id.
const appCrashConfigPath = "approle-crash/config"

// TestAppRoleCrashAtEveryFailpoint crashes the engine at each failpoint in
// the middle of a rotation of an AppRole secret id into Vault KV (for the
// rollback failpoints, the first attempt rolls back because the dependent
// fails), then starts a new engine over the same journal, reconciles and
// rotates to completion. rekey logs in with its own AppRole; the
// application reads its credential from KV with its own reader AppRole at
// start and when reloaded, and logs in with it. Checked after the crash,
// after reconciling and at the end: every secret id accessor of the role is
// known to the journal (after the crash, an accessor created by the
// interrupted rotation may be known only by the rotation id in its
// metadata; reconciling destroys it), the role never has more than two
// secret ids, and both the secret id KV serves (read as the application
// does) and the one the application holds log in. At the end exactly one
// secret id remains, it is the journal's current key and KV serves it, and
// every other secret id seen along the way no longer logs in.
func TestAppRoleCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	v := startVault(t)
	v.srv.EnableAppRole(t, "approle")
	v.srv.WritePolicy(t, "approle-crash-app", fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, appCrashConfigPath))
	v.put(t, appCrashConfigPath, map[string]string{"feature": "on"})
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			w := newAppCrashWorld(h, v, fp)
			rollbackFirst := strings.HasPrefix(fp, "rollback.")
			h.src = w.hcl(rollbackFirst)
			_, w.app.failUnless = w.app.credential()
			w.app.fail.Store(rollbackFirst)

			var canDeactivate bool
			crashed, first := func() (crashed any, out rotator.Outcome) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() {
					w.noteToken(p)
					crashed = recover()
				}()
				_, canDeactivate = p.cfg.Policies[0].Provider.Provider.(providers.Deactivator)
				return nil, h.rotate(p, appCrashPolicy)
			}()
			switch {
			case crashed == nil && strings.HasPrefix(fp, "deactivate.") && !canDeactivate:
				// Vault cannot deactivate a secret id: the soak keeps the old
				// one valid and the engine must not reach the deactivation.
				if first.Result != "done" {
					t.Fatalf("rotation with %s enabled: %s at %s (%v), want done", fp, first.Result, first.Step, first.Err)
				}
				t.Logf("%s not reached: the provider cannot deactivate; the rotation is done", fp)
			case crashed == nil:
				t.Fatalf("failpoint %s was never reached: the rotation ended %s at %s (%v)", fp, first.Result, first.Step, first.Err)
			case crashed != "failpoint "+fp:
				t.Fatalf("the engine panicked with %v, not at the failpoint", crashed)
			}
			w.app.fail.Store(false)

			p := h.start(nil)
			before := h.state(p, appCrashPolicy)
			w.check("after the crash", before, false)
			orphans := w.unknown(before)
			if fp == "create.after" && len(orphans) != 1 {
				t.Errorf("after the crash at create.after the journal does not know %d secret ids, want 1 (the one just created)", len(orphans))
			}
			committed := before.Active != nil && before.Active.Committed()

			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			st := h.state(p, appCrashPolicy)
			switch {
			case st.Active != nil && !st.Active.Committed():
				t.Fatalf("after reconciling, a rotation is still half-way before commit: step %s", st.Active.Step)
			case committed && st.Active == nil && st.LastResult != "done":
				t.Fatalf("a committed rotation was not rolled forward: last result %s", st.LastResult)
			case before.Active != nil && !committed:
				if st.Active != nil || st.LastResult != "rolled_back" {
					t.Errorf("the rotation interrupted before commit was not rolled back: last result %s", st.LastResult)
				}
				if acc := w.accessors(); len(acc) != 1 || acc[0] != w.seedAccessor {
					t.Errorf("after rolling back the role has %d secret ids, want only the seed", len(acc))
				}
				if d, _, err := v.get(h.ctx, h, w.kvPath, 0); err != nil || d["secret_id"] != w.seedSecretID {
					t.Errorf("after rolling back KV does not serve the seed secret id (%v)", err)
				}
			}
			w.check("after reconciling", st, true)
			for _, id := range orphans {
				if w.lookupAccessor(id) != nil {
					t.Errorf("reconciling left the orphan secret id %s", secret.Mask(id))
				}
			}
			t.Logf("%s: after the crash: %s; after reconciling: %s", fp, describeState(before), describeState(st))

			out := h.rotate(p, appCrashPolicy)
			if out.Result != "done" {
				t.Fatalf("rotation after recovery: %s at %s (%v)\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
			}
			w.noteToken(p)
			st = h.state(p, appCrashPolicy)
			w.check("at the end", st, true)
			w.final(st)
		})
	}
}

// describeState says where a policy's journal stands.
func describeState(st rotator.PolicyState) string {
	if a := st.Active; a != nil {
		c := "before commit"
		if a.Committed() {
			c = "committed"
		}
		return fmt.Sprintf("in flight at %s (%s)", a.Step, c)
	}
	return "idle, last result " + or(st.LastResult, "none")
}

// appCrashWorld is one subtest of the AppRole crash matrix: its own role
// (the credential rotated), rekey's role, the reader role of the
// application and the KV path, on the matrix's shared Vault server.
type appCrashWorld struct {
	h      *harness
	v      *vaultEnv
	role   string
	kvPath string
	roleID string
	// rekeyRoleID and rekeySecretID are rekey's own AppRole credential.
	rekeyRoleID, rekeySecretID string
	seedSecretID, seedAccessor string
	app                        *appCrashApp

	mu sync.Mutex
	// seen holds every secret id of the role read from KV or the
	// application, to check at the end that only the current one logs in.
	seen map[string]bool
}

func newAppCrashWorld(h *harness, v *vaultEnv, fp string) *appCrashWorld {
	t := h.t
	t.Helper()
	name := "crash-" + strings.ReplaceAll(fp, ".", "-")
	w := &appCrashWorld{h: h, v: v, role: name, kvPath: "approle-crash/" + name, seen: map[string]bool{}}
	srv := v.srv
	srv.WritePolicy(t, "rekey-"+name, fmt.Sprintf(`
path "secret/data/%[1]s"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/%[1]s" { capabilities = ["create", "read", "update", "patch"] }
path "secret/delete/%[1]s"   { capabilities = ["update"] }
path "auth/approle/role/%[2]s/role-id"              { capabilities = ["read"] }
path "auth/approle/role/%[2]s/secret-id"            { capabilities = ["update", "list"] }
path "auth/approle/role/%[2]s/secret-id-accessor/*" { capabilities = ["update"] }
`, w.kvPath, name))
	srv.WritePolicy(t, "reader-"+name, fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, w.kvPath))
	w.rekeyRoleID = srv.CreateRole(t, "approle", "rekey-"+name, map[string]any{"token_policies": "rekey-" + name})
	w.rekeySecretID, _ = srv.NewSecretID(t, "approle", "rekey-"+name)
	readerRoleID := srv.CreateRole(t, "approle", "reader-"+name, map[string]any{"token_policies": "reader-" + name})
	readerSecretID, _ := srv.NewSecretID(t, "approle", "reader-"+name)
	w.roleID = srv.CreateRole(t, "approle", name, map[string]any{"token_policies": "approle-crash-app"})
	w.seedSecretID, w.seedAccessor = srv.NewSecretID(t, "approle", name)
	h.secret("rekey's secret id", w.rekeySecretID)
	h.secret("the reader's secret id", readerSecretID)
	h.secret("the seed secret id", w.seedSecretID)
	h.keyID("the seed secret id accessor", w.seedAccessor)
	w.seen[w.seedSecretID] = true
	v.put(t, w.kvPath, map[string]string{"role_id": w.roleID, "secret_id": w.seedSecretID})
	w.app = newAppCrashApp(w, readerRoleID, readerSecretID)
	return w
}

// hcl is the configuration: rekey logs in with its AppRole; the
// application is reloaded through the test binary's POST helper. With
// rollbackFirst the dependent probe gives up quickly, as the first attempt
// is meant to fail.
func (w *appCrashWorld) hcl(rollbackFirst bool) string {
	exe, err := os.Executable()
	if err != nil {
		w.h.t.Fatal(err)
	}
	depTimeout := "10s"
	if rollbackFirst {
		depTimeout = "500ms"
	}
	auth := fmt.Sprintf("auth \"approle\" {\n    role_id_file   = %q\n    secret_id_file = %q\n  }",
		w.h.writeFile("rekey-role-id", w.rekeyRoleID), w.h.writeFile("rekey-secret-id", w.rekeySecretID))
	return "state_dir = \"state\"\n\n" + w.v.block(w.h, auth) + fmt.Sprintf(`
policy %q {
  every        = "7d"
  step_timeout = "10s"

  provider "vault_approle_secret_id" {
    connection = vault.main
    role_name  = %q
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = %q
  }

  probe "vault_login" {
    connection = vault.main
    read_path  = "secret/data/%s"
    timeout    = "10s"
    interval   = "100ms"
  }

  reload "exec" {
    command = [%q]
    env     = { %s = %q }
  }

  probe "http" {
    target   = "dependent"
    url      = %q
    timeout  = %q
    interval = "100ms"
  }

  revoke {
    after = "0s"
    soak  = "200ms"
  }
}
`, appCrashPolicy, w.role, w.kvPath, appCrashConfigPath, exe, helperEnv, w.app.srv.URL+"/reload", w.app.srv.URL+"/healthz", depTimeout)
}

// noteToken records rekey's own Vault token for the leak check.
func (w *appCrashWorld) noteToken(p *proc) {
	if c, ok := p.cfg.Connections.Get(vault.Kind, "main"); ok {
		if cl, err := c.(*vault.Conn).Client(w.h.ctx); err == nil {
			w.h.secret("rekey's own Vault token", cl.Token())
		}
	}
}

func (w *appCrashWorld) rolePath() string { return "auth/approle/role/" + w.role }

// accessors lists the role's secret id accessors.
func (w *appCrashWorld) accessors() []string {
	t := w.h.t
	t.Helper()
	list, err := w.v.srv.Client.Logical().ListWithContext(w.h.ctx, w.rolePath()+"/secret-id")
	if err != nil {
		t.Fatalf("listing the secret ids of %s: %v", w.role, err)
	}
	var out []string
	if list != nil {
		keys, _ := list.Data["keys"].([]any)
		for _, k := range keys {
			s, _ := k.(string)
			w.h.keyID("a secret id accessor of "+w.role, s)
			out = append(out, s)
		}
	}
	return out
}

// lookupAccessor returns a secret id's details by accessor, or nil when it
// does not exist.
func (w *appCrashWorld) lookupAccessor(accessor string) *api.Secret {
	t := w.h.t
	t.Helper()
	s, err := w.v.srv.Client.Logical().WriteWithContext(w.h.ctx, w.rolePath()+"/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": accessor})
	if vault.IsStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("looking up secret id %s: %v", secret.Mask(accessor), err)
	}
	if s == nil || s.Data == nil {
		return nil
	}
	return s
}

// accessorOf returns the accessor of a secret id of the role, or "".
func (w *appCrashWorld) accessorOf(secretID string) string {
	s, err := w.v.srv.Client.Logical().WriteWithContext(w.h.ctx, w.rolePath()+"/secret-id/lookup", map[string]any{"secret_id": secretID})
	if err != nil || s == nil {
		return ""
	}
	a, _ := s.Data["secret_id_accessor"].(string)
	return a
}

// known returns the accessors the journal knows, and the seed's, which was
// in use before rekey managed the role (the first rotation adopts it).
func (w *appCrashWorld) known(st rotator.PolicyState) map[string]bool {
	known := map[string]bool{w.seedAccessor: true, st.CurrentKeyID: true}
	for _, id := range st.Retired {
		known[id] = true
	}
	if a := st.Active; a != nil {
		known[a.NewKeyID] = true
		for _, id := range a.OldKeyIDs {
			known[id] = true
		}
	}
	return known
}

// unknown returns the role's accessors the journal does not know by id.
func (w *appCrashWorld) unknown(st rotator.PolicyState) []string {
	known := w.known(st)
	var out []string
	for _, a := range w.accessors() {
		if !known[a] {
			out = append(out, a)
		}
	}
	return out
}

// check asserts the invariants of every checkpoint. Unless strict, an
// accessor the journal does not know by id is allowed if its metadata
// names the rotation in flight: rekey can find it and destroy it.
func (w *appCrashWorld) check(when string, st rotator.PolicyState, strict bool) {
	t := w.h.t
	t.Helper()
	if acc := w.accessors(); len(acc) > 2 {
		t.Errorf("%s: the role has %d secret ids", when, len(acc))
	}
	for _, a := range w.unknown(st) {
		if strict || st.Active == nil {
			t.Errorf("%s: the role holds secret id %s, which the journal does not know (an orphan)", when, secret.Mask(a))
			continue
		}
		s := w.lookupAccessor(a)
		var rot string
		if s != nil {
			md, _ := s.Data["metadata"].(map[string]any)
			rot, _ = md[vaultapprole.MetaRotationID].(string)
		}
		if rot != st.Active.ID {
			t.Errorf("%s: the role holds secret id %s, which neither the journal nor its metadata ties to the rotation in flight", when, secret.Mask(a))
		}
	}
	roleID, secretID, err := w.app.read(w.h.ctx)
	if err == nil {
		w.saw(secretID)
		err = w.login(roleID, secretID)
	}
	if err != nil {
		t.Errorf("%s: the credential KV serves, read as the application does: %v", when, err)
	}
	if err := w.app.check(); err != nil {
		t.Errorf("%s: the application's credential: %v", when, err)
	}
}

func (w *appCrashWorld) saw(secretID string) {
	w.h.secret("a secret id of the rotated role", secretID)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[secretID] = true
}

// login logs in once with the credential.
func (w *appCrashWorld) login(roleID, secretID string) error {
	if roleID != w.roleID {
		return fmt.Errorf("the role id is not that of %s", w.role)
	}
	tok, err := w.v.srv.Login("approle", roleID, secretID)
	if err != nil {
		return fmt.Errorf("the secret id %s does not log in: %w", secret.Mask(w.accessorOf(secretID)), err)
	}
	w.h.secret("a token of the rotated role", tok)
	return nil
}

// final asserts the end state: one secret id, the journal's current key,
// served by KV and held by the application; every other one seen is gone.
func (w *appCrashWorld) final(st rotator.PolicyState) {
	t := w.h.t
	t.Helper()
	if st.Active != nil || st.LastResult != "done" {
		t.Errorf("at the end the journal is %s, want idle after done", describeState(st))
	}
	if acc := w.accessors(); len(acc) != 1 || acc[0] != st.CurrentKeyID || st.CurrentKeyID == w.seedAccessor {
		t.Errorf("at the end the role has %d secret ids, want exactly the journal's current key %s", len(acc), secret.Mask(st.CurrentKeyID))
	}
	d, _, err := w.v.get(w.h.ctx, w.h, w.kvPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	current := d["secret_id"]
	if a := w.accessorOf(current); a != st.CurrentKeyID {
		t.Errorf("at the end KV serves secret id %s, want the journal's current key %s", secret.Mask(a), secret.Mask(st.CurrentKeyID))
	}
	w.mu.Lock()
	seen := make([]string, 0, len(w.seen))
	for s := range w.seen {
		seen = append(seen, s)
	}
	w.mu.Unlock()
	if !slices.Contains(seen, w.seedSecretID) {
		t.Fatal("the seed secret id was not recorded")
	}
	for _, s := range seen {
		if s == current {
			continue
		}
		if tok, err := w.v.srv.Login("approle", w.roleID, s); err == nil {
			w.h.secret("a token of an old secret id", tok)
			what := "a secret id of an earlier attempt"
			if s == w.seedSecretID {
				what = "the seed (old) secret id"
			}
			t.Errorf("at the end %s still logs in", what)
		}
	}
	logins, reloads := w.app.history()
	for _, l := range logins {
		if l.err != nil {
			t.Errorf("the application failed to log in: %v", l.err)
		}
	}
	if reloads == 0 {
		t.Error("the application was never reloaded")
	}
	if _, cached := w.app.credential(); cached != current {
		t.Error("at the end the application does not hold the secret id KV serves")
	}
}

// appCrashApp is the application whose secret id rekey rotates. It reads
// its role id and secret id from KV with its own reader AppRole at start
// and on POST /reload, like a service reading its configuration at start
// and on SIGHUP; each GET logs in with what it holds (or fails, when told
// to).
type appCrashApp struct {
	w                            *appCrashWorld
	readerRoleID, readerSecretID string
	srv                          *httptest.Server
	// fail makes the health check answer 500 while the application holds
	// a secret id other than failUnless (it breaks with the new one).
	fail       atomic.Bool
	failUnless string

	mu               sync.Mutex
	roleID, secretID string
	logins           []appLogin
	reloads          int
}

func newAppCrashApp(w *appCrashWorld, readerRoleID, readerSecretID string) *appCrashApp {
	a := &appCrashApp{w: w, readerRoleID: readerRoleID, readerSecretID: readerSecretID}
	if err := a.load(w.h.ctx); err != nil {
		w.h.t.Fatalf("the application cannot read its credential: %v", err)
	}
	if err := a.check(); err != nil {
		w.h.t.Fatalf("the application does not work before the rotation: %v", err)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	w.h.t.Cleanup(a.srv.Close)
	return a
}

// read reads the credential from KV as the application does.
func (a *appCrashApp) read(ctx context.Context) (roleID, secretID string, err error) {
	h := a.w.h
	tok, err := a.w.v.srv.Login("approle", a.readerRoleID, a.readerSecretID)
	if err != nil {
		return "", "", fmt.Errorf("reader login: %w", err)
	}
	h.secret("the reader's token", tok)
	c, err := a.w.v.srv.Client.Clone()
	if err != nil {
		return "", "", err
	}
	c.SetToken(tok)
	s, err := c.KVv2("secret").Get(ctx, a.w.kvPath)
	if err != nil {
		return "", "", fmt.Errorf("reading secret/%s: %w", a.w.kvPath, err)
	}
	roleID, _ = s.Data["role_id"].(string)
	secretID, _ = s.Data["secret_id"].(string)
	h.secret("a secret id the application read", secretID)
	return roleID, secretID, nil
}

func (a *appCrashApp) load(ctx context.Context) error {
	roleID, secretID, err := a.read(ctx)
	if err != nil {
		return err
	}
	a.w.saw(secretID)
	a.mu.Lock()
	a.roleID, a.secretID = roleID, secretID
	a.mu.Unlock()
	return nil
}

func (a *appCrashApp) credential() (roleID, secretID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.roleID, a.secretID
}

func (a *appCrashApp) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/reload" {
		if err := a.load(r.Context()); err != nil {
			http.Error(w, "reading the credential failed", http.StatusServiceUnavailable)
			return
		}
		a.mu.Lock()
		a.reloads++
		a.mu.Unlock()
		return
	}
	if _, held := a.credential(); a.fail.Load() && held != a.failUnless {
		http.Error(w, "the application fails with this secret id (test)", http.StatusInternalServerError)
		return
	}
	if err := a.check(); err != nil {
		http.Error(w, "the application cannot log in to Vault", http.StatusServiceUnavailable)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// check logs in once with the credential the application holds and
// records the outcome.
func (a *appCrashApp) check() error {
	roleID, secretID := a.credential()
	err := a.w.login(roleID, secretID)
	a.mu.Lock()
	a.logins = append(a.logins, appLogin{secretID, err})
	a.mu.Unlock()
	return err
}

func (a *appCrashApp) history() (logins []appLogin, reloads int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]appLogin(nil), a.logins...), a.reloads
}
