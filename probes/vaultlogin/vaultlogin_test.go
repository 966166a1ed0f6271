package vaultlogin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/probes/vaultlogin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func newProbe(t *testing.T, conn *vault.Conn, body string) probes.Probe {
	t.Helper()
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	p, diags := vaultlogin.New(vaulttest.Env(t, conns), vaulttest.Body(t, "connection = vault.main\n"+body))
	if diags.HasErrors() {
		t.Fatalf("probe: %s", diags.Error())
	}
	return p
}

// setup: AppRole role "app" whose tokens may read kv/data/app/config.
func setup(t *testing.T) (*vaulttest.Server, *vault.Conn, string) {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.EnableKV(t, "kv", 2)
	if _, err := srv.Client.KVv2("kv").Put(context.Background(), "app/config", map[string]any{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	srv.WritePolicy(t, "app", `path "kv/data/app/config" { capabilities = ["read"] }`)
	srv.EnableAppRole(t, "approle")
	roleID := srv.CreateRole(t, "approle", "app", map[string]any{"token_policies": "app"})
	conn, _ := srv.Connection(t, "")
	return srv, conn, roleID
}

func tokenCount(t *testing.T, srv *vaulttest.Server) int {
	t.Helper()
	sec, err := srv.Client.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	return len(sec.Data["keys"].([]any))
}

func TestAppRoleLoginAndRead(t *testing.T) {
	t.Parallel()
	srv, conn, roleID := setup(t)
	p := newProbe(t, conn, `read_path = "kv/data/app/config"`)
	if tg, ok := p.(probes.Targeter); !ok || tg.DefaultTarget() != probes.TargetKey {
		t.Fatal("vault_login should target the key")
	}
	sid, acc := srv.NewSecretID(t, "approle", "app")
	key := plugin.Key{ID: acc, Value: secret.Fields{"role_id": secret.New(roleID), "secret_id": secret.New(sid)}}
	ctx, logs := vaulttest.Logger(t)
	tokens := tokenCount(t, srv)
	if err := p.Check(ctx, key); err != nil {
		t.Fatalf("Check with a valid secret id: %v", err)
	}
	if n := tokenCount(t, srv); n != tokens {
		t.Errorf("tokens %d -> %d: the probe's token was not revoked", tokens, n)
	}
	var errs []string
	if _, err := srv.Client.Logical().Write("auth/approle/role/app/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": acc}); err != nil {
		t.Fatal(err)
	}
	err := p.Check(ctx, key)
	errs = append(errs, vaulttest.ErrText(err))
	if err == nil || !strings.Contains(err.Error(), "auth/approle") {
		t.Fatalf("Check with a destroyed secret id = %v", err)
	}
	vaulttest.AssertNoLeak(t, append(errs, logs.String()), sid, roleID, srv.RootToken)
}

func TestReadPathMustBeReadable(t *testing.T) {
	t.Parallel()
	srv, conn, roleID := setup(t)
	p := newProbe(t, conn, `read_path = "kv/data/other"`)
	sid, _ := srv.NewSecretID(t, "approle", "app")
	err := p.Check(context.Background(), plugin.Key{Value: secret.Fields{"role_id": secret.New(roleID), "secret_id": secret.New(sid)}})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Check reading a forbidden path = %v", err)
	}
}

func TestCustomFieldNamesAndMissingField(t *testing.T) {
	t.Parallel()
	srv, conn, roleID := setup(t)
	p := newProbe(t, conn, "role_id_field = \"VAULT_ROLE_ID\"\nsecret_id_field = \"VAULT_SECRET_ID\"\n")
	sid, _ := srv.NewSecretID(t, "approle", "app")
	if err := p.Check(context.Background(), plugin.Key{Value: secret.Fields{"VAULT_ROLE_ID": secret.New(roleID), "VAULT_SECRET_ID": secret.New(sid)}}); err != nil {
		t.Fatalf("Check with renamed fields: %v", err)
	}
	err := p.Check(context.Background(), plugin.Key{Value: secret.Fields{"role_id": secret.New(roleID)}})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "VAULT_ROLE_ID") {
		t.Fatalf("Check without the field = %v", err)
	}
}

func TestTokenMethod(t *testing.T) {
	t.Parallel()
	srv, conn, _ := setup(t)
	p := newProbe(t, conn, "method = \"token\"\nread_path = \"kv/data/app/config\"\n")
	sec, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := sec.Auth.ClientToken
	key := plugin.Key{Value: secret.Fields{"token": secret.New(tok)}}
	if err := p.Check(context.Background(), key); err != nil {
		t.Fatalf("Check with a valid token: %v", err)
	}
	if _, err := srv.Client.Auth().Token().Lookup(tok); err != nil {
		t.Fatal("the probe revoked the token under test")
	}
	if err := srv.Client.Auth().Token().RevokeOrphan(tok); err != nil {
		t.Fatal(err)
	}
	err = p.Check(context.Background(), key)
	if err == nil {
		t.Fatal("Check with a revoked token passed")
	}
	vaulttest.AssertNoLeak(t, []string{err.Error()}, tok, srv.RootToken)
}

func TestFactoryDiagnostics(t *testing.T) {
	t.Parallel()
	srv := &vaulttest.Server{Addr: "http://127.0.0.1:1", RootToken: "unused"}
	conn, conns := srv.Connection(t, "")
	_ = conn
	for body, want := range map[string]string{
		`method = "ldap"`:                   "Unsupported method",
		"method = \"token\"\nmount = \"x\"": "mount with method token",
		`secret_id_feld = "x"`:              "Unsupported argument",
	} {
		_, diags := vaultlogin.New(vaulttest.Env(t, conns), vaulttest.Body(t, "connection = vault.main\n"+body))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
}
