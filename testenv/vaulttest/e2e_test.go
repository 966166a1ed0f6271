package vaulttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes/vaultlogin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/vaultapprole"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// TestRotateAppRoleSecretIDThroughKV runs the rotation protocol's steps by
// hand (the engine is not involved): rekey, logged in with its own AppRole
// on a short token TTL, creates a new secret id for the role "app", writes
// it to kv/app/creds, checks it logs in, and revokes the old one. A
// dependent, logged in with a second AppRole "reader", reads the path and
// logs in with what it found.
func TestRotateAppRoleSecretIDThroughKV(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	srv.EnableKV(t, "kv", 2, vaulttest.CASRequired())
	srv.EnableAppRole(t, "approle")
	srv.WritePolicy(t, "rekey", `
path "kv/data/app/creds"     { capabilities = ["create", "read", "update"] }
path "kv/metadata/app/creds" { capabilities = ["create", "read", "update", "patch"] }
path "kv/delete/app/creds"   { capabilities = ["update"] }
path "auth/approle/role/app/role-id"               { capabilities = ["read"] }
path "auth/approle/role/app/secret-id"             { capabilities = ["update", "list"] }
path "auth/approle/role/app/secret-id-accessor/*"  { capabilities = ["update"] }
`)
	srv.WritePolicy(t, "reader", `path "kv/data/app/creds" { capabilities = ["read"] }`)
	srv.WritePolicy(t, "app", `path "kv/data/app/config" { capabilities = ["read"] }`)
	if _, err := srv.Client.KVv2("kv").Put(context.Background(), "app/config", map[string]any{"x": "1"}, api.WithCheckAndSet(0)); err != nil {
		t.Fatal(err)
	}
	rekeyRoleID := srv.CreateRole(t, "approle", "rekey", map[string]any{"token_policies": "rekey", "token_ttl": "2s", "token_max_ttl": "3s"})
	rekeySecretID, _ := srv.NewSecretID(t, "approle", "rekey")
	readerRoleID := srv.CreateRole(t, "approle", "reader", map[string]any{"token_policies": "reader"})
	readerSecretID, _ := srv.NewSecretID(t, "approle", "reader")
	appRoleID := srv.CreateRole(t, "approle", "app", map[string]any{"token_policies": "app"})
	oldSecretID, oldAccessor := srv.NewSecretID(t, "approle", "app")

	conn, conns := srv.Connection(t, "auth \"approle\" {\n role_id_file = \""+vaulttest.WriteFile(t, "rid", rekeyRoleID)+"\"\n secret_id_file = \""+vaulttest.WriteFile(t, "sid", rekeySecretID)+"\"\n}\n")
	env := vaulttest.Env(t, conns)
	prov, diags := vaultapprole.New(env, vaulttest.Body(t, "connection = vault.main\nrole_name = \"app\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	sink, diags := vaultkv.New(env, vaulttest.Body(t, "connection = vault.main\nmount = \"kv\"\npath = \"app/creds\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	probe, diags := vaultlogin.New(env, vaulttest.Body(t, "connection = vault.main\nread_path = \"kv/data/app/config\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	ctx, logs := vaulttest.Logger(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := conn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var errs []string
	check := func(what string, err error) {
		t.Helper()
		errs = append(errs, vaulttest.ErrText(err))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	rot := plugin.Rotation{ID: "rot-e2e", Policy: "app-secret-id", Generation: 1, StartedAt: time.Now()}
	prev, err := sink.Current(ctx)
	check("Current", err)
	key, err := prov.Create(ctx, rot)
	check("Create", err)
	newSecretID := key.Value["secret_id"].Reveal()
	check("test probe", probe.Check(ctx, key))
	promoted, err := sink.Promote(ctx, rot, key, sinks.State{Prev: prev})
	check("Promote", err)
	if promoted != "1" {
		t.Fatalf("promoted version %q", promoted)
	}

	// The dependent reads its credential from KV and logs in with it.
	readerToken, err := srv.Login("approle", readerRoleID, readerSecretID)
	check("reader login", err)
	rc, err := srv.Client.Clone()
	check("clone", err)
	rc.SetToken(readerToken)
	got, err := rc.KVv2("kv").Get(ctx, "app/creds")
	check("dependent reads kv/app/creds", err)
	if got.Data["role_id"] != appRoleID || got.Data["secret_id"] != newSecretID {
		t.Fatal("the dependent did not find the new credential")
	}
	_, err = srv.Login("approle", got.Data["role_id"].(string), got.Data["secret_id"].(string))
	check("dependent logs in with the credential from kv", err)

	// Let rekey's own token expire and be replaced while idle.
	deadline := time.Now().Add(30 * time.Second)
	for conn.Logins() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("rekey's own token was not replaced after its max TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Revoke the old key after the (here immediate) commit.
	infos, err := prov.(providers.Lister).List(ctx)
	check("List", err)
	if len(infos) != 2 {
		t.Fatalf("List found %d secret ids, want 2", len(infos))
	}
	check("Delete old", prov.Delete(ctx, oldAccessor))
	if _, err := srv.Login("approle", appRoleID, oldSecretID); err == nil {
		t.Fatal("the old secret id still logs in after revoke")
	}
	if _, err := srv.Login("approle", appRoleID, newSecretID); err != nil {
		t.Fatalf("the new secret id no longer logs in: %v", err)
	}
	check("dependent probe after revoke", probe.Check(ctx, key))

	cl, err := conn.Client(ctx)
	check("client", err)
	rekeyToken := cl.Token()
	check("close", conn.Close())
	vaulttest.AssertNoLeak(t, append(errs, logs.String()),
		srv.RootToken, rekeySecretID, readerSecretID, oldSecretID, newSecretID, readerToken, rekeyToken)
}
