package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// TestAppRoleSecretIDRotatedBeforeItExpires: the role "app" gives its
// secret ids a 30-second lifetime (secret_id_ttl). rekey adopts the secret
// id the application uses, learns its expiry from Vault's lookup, and the
// daemon's scheduler rotates it expiry_lead (two thirds of the lifetime,
// 20 seconds) before it expires, again and again, although every is a
// week. An application that reads its credential from KV and logs in with
// it every 50 ms never fails, each old secret id is destroyed before it
// would have expired, and the journal knows the current one's expiry.
func TestAppRoleSecretIDRotatedBeforeItExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := startVault(t)
	srv := v.srv
	srv.EnableAppRole(t, "approle")
	srv.WritePolicy(t, "reader", `path "secret/data/app/approle" { capabilities = ["read"] }`)
	srv.WritePolicy(t, "app", `path "secret/data/app/config" { capabilities = ["read"] }`)
	v.put(t, "app/config", map[string]string{"feature": "on"})
	readerRoleID := srv.CreateRole(t, "approle", "reader", map[string]any{"token_policies": "reader"})
	readerSecretID, _ := srv.NewSecretID(t, "approle", "reader")
	appRoleID := srv.CreateRole(t, "approle", "app", map[string]any{"token_policies": "app", "secret_id_ttl": "30s"})
	oldSecretID, oldAccessor := srv.NewSecretID(t, "approle", "app")
	h.secret("the reader's secret id", readerSecretID)
	h.secret("the first secret id", oldSecretID)
	h.keyID("the first secret id accessor", oldAccessor)
	v.put(t, "app/approle", map[string]string{"role_id": appRoleID, "secret_id": oldSecretID})
	app := newAppDependent(h, v, readerRoleID, readerSecretID)
	if _, err := app.login(h.ctx); err != nil {
		t.Fatalf("the application does not work before the rotation: %v", err)
	}

	h.src = "state_dir = \"state\"\n\n" + v.block(h, "") + fmt.Sprintf(`
policy %q {
  every        = "7d"
  expiry_lead  = "66%%"
  step_timeout = "10s"

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
    timeout    = "5s"
    interval   = "100ms"
  }

  probe "http" {
    target   = "dependent"
    url      = %q
    timeout  = "5s"
    interval = "100ms"
  }

  revoke {
    after = "0s"
  }
}
`, appPolicy, app.srv.URL+"/healthz")

	// The expiry of each secret id, as Vault reports it, before rekey
	// destroys it.
	var mu sync.Mutex
	expiry := map[string]time.Time{}
	revokedAt := map[string]time.Time{}
	note := func(accessor string) {
		s, err := srv.Client.Logical().Write("auth/approle/role/app/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": accessor})
		if err != nil || s == nil {
			return
		}
		if t, err := time.Parse(time.RFC3339Nano, fmt.Sprint(s.Data["expiration_time"])); err == nil {
			mu.Lock()
			expiry[accessor] = t
			mu.Unlock()
		}
	}
	note(oldAccessor)
	h.observers = append(h.observers, rotator.ObserverFunc(func(_ context.Context, ev rotator.Event) {
		if ev.Step == rotator.StepRevoke && ev.Result == rotator.ResultOK {
			mu.Lock()
			revokedAt[ev.OldKeyID] = ev.Time
			mu.Unlock()
		}
	}))
	p := h.start(nil)

	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = p.e.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if resp, err := http.Get(app.srv.URL + "/healthz"); err == nil {
				_ = resp.Body.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	deadline := time.Now().Add(75 * time.Second)
	var st rotator.PolicyState
	for time.Now().Before(deadline) {
		st = h.state(p, appPolicy)
		if st.CurrentKeyID != "" {
			note(st.CurrentKeyID)
		}
		if st.Generation >= 3 && st.Active == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	done := 0
	for _, r := range st.History {
		if r.Result == "done" {
			done++
		}
	}
	if done < 2 {
		t.Fatalf("%d rotations done (generation %d); events: %v", done, st.Generation, stepsOf(h.eventLog()))
	}
	if st.CurrentKeyExpires.IsZero() {
		t.Error("the journal does not know when the current secret id expires")
	}
	for _, e := range h.eventLog() {
		if e.Step == rotator.StepExpiry {
			t.Errorf("an expiry event although every secret id was rotated in time: %+v", e)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revokedAt) < 2 {
		t.Fatalf("%d old secret ids revoked, want at least 2", len(revokedAt))
	}
	for masked, at := range revokedAt {
		var exp time.Time
		for acc, e := range expiry {
			if len(acc) >= 4 && masked[len(masked)-4:] == acc[len(acc)-4:] {
				exp = e
			}
		}
		if exp.IsZero() {
			t.Errorf("no expiry recorded for the revoked secret id %s", masked)
			continue
		}
		if !at.Before(exp) {
			t.Errorf("secret id %s was revoked at %s, after it expired at %s", masked, at, exp)
		}
	}
	logins := app.history()
	for _, l := range logins {
		if l.err != nil {
			t.Errorf("the application failed to log in: %v", l.err)
		}
	}
	if len(logins) < 100 {
		t.Errorf("only %d application logins: the dependent was hardly checked", len(logins))
	}
	h.checkLeaks()
}
