package vaultapprole_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/vaultapprole"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func newProvider(t *testing.T, conn *vault.Conn, extra string) providers.Provider {
	t.Helper()
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	p, diags := vaultapprole.New(vaulttest.Env(t, conns), vaulttest.Body(t, "connection = vault.main\nrole_name = \"app\"\n"+extra))
	if diags.HasErrors() {
		t.Fatalf("provider: %s", diags.Error())
	}
	return p
}

func setup(t *testing.T) (*vaulttest.Server, *vault.Conn, string) {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.EnableAppRole(t, "approle")
	roleID := srv.CreateRole(t, "approle", "app", map[string]any{"token_ttl": "1m"})
	conn, _ := srv.Connection(t, "")
	return srv, conn, roleID
}

func TestCreateListDelete(t *testing.T) {
	t.Parallel()
	srv, conn, roleID := setup(t)
	p := newProvider(t, conn, `metadata = { team = "payments" }`+"\nttl = \"1h\"\nnum_uses = 0\n")
	ctx, logs := vaulttest.Logger(t)
	var errs []string

	if got := p.Target(); got != "vault_approle_secret_id:main:approle/app" {
		t.Errorf("Target = %q", got)
	}
	if _, ok := p.(providers.Capacity); ok {
		t.Error("a provider without max_secret_ids reports a capacity")
	}
	rot := plugin.Rotation{ID: "rot-1", Policy: "app-creds"}
	before := time.Now().Add(-time.Second)
	k, err := p.Create(ctx, rot)
	errs = append(errs, vaulttest.ErrText(err))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if k.Value[vaultapprole.FieldRoleID].Reveal() != roleID || k.Value[vaultapprole.FieldSecretID].IsZero() || k.ID == "" {
		t.Fatalf("Create returned key %s with fields %v", k.ID, k.Value)
	}
	sid := k.Value[vaultapprole.FieldSecretID].Reveal()
	if _, err := srv.Login("approle", roleID, sid); err != nil {
		t.Fatalf("the new secret id does not log in: %v", err)
	}
	look, err := srv.Client.Logical().Write("auth/approle/role/app/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": k.ID})
	if err != nil {
		t.Fatal(err)
	}
	md := look.Data["metadata"].(map[string]any)
	if md["rekey_rotation_id"] != "rot-1" || md["team"] != "payments" || md["rekey_policy"] != "app-creds" {
		t.Errorf("secret id metadata = %v", md)
	}
	if ttl := look.Data["secret_id_ttl"]; ttl == nil || ttl.(interface{ String() string }).String() != "3600" {
		t.Errorf("secret_id_ttl = %v, want 3600", ttl)
	}

	list, err := p.(providers.Lister).List(ctx)
	errs = append(errs, vaulttest.ErrText(err))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].ID != k.ID || list[0].RotationID != "rot-1" || list[0].Status != plugin.KeyActive || list[0].CreatedAt.Before(before) {
		t.Fatalf("List = %+v", list)
	}

	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := srv.Login("approle", roleID, sid); err == nil {
		t.Fatal("the deleted secret id still logs in")
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatalf("Delete of an absent secret id: %v", err)
	}
	if list, err := p.(providers.Lister).List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List after delete = %v, %v", list, err)
	}
	vaulttest.AssertNoLeak(t, append(errs, logs.String()), sid, srv.RootToken)
	if !strings.Contains(logs.String(), "created a secret id") || strings.Contains(logs.String(), k.ID) {
		t.Error("the log should mention the creation with a masked key id")
	}
}

func TestOrphanIsFoundByRotationID(t *testing.T) {
	t.Parallel()
	srv, conn, _ := setup(t)
	p := newProvider(t, conn, "")
	ctx := context.Background()
	_, other := srv.NewSecretID(t, "approle", "app")
	// A crash after Create but before the journal: Create runs again.
	k1, err := p.Create(ctx, plugin.Rotation{ID: "rot-crash"})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-crash"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := p.(providers.Lister).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRot := map[string][]string{}
	for _, ki := range list {
		byRot[ki.RotationID] = append(byRot[ki.RotationID], ki.ID)
	}
	if len(byRot["rot-crash"]) != 2 || len(byRot[""]) != 1 || byRot[""][0] != other {
		t.Fatalf("List by rotation = %v (k1 %s, k2 %s)", byRot, k1.ID, k2.ID)
	}
	if list[0].ID != other {
		t.Error("List is not ordered oldest first")
	}
}

func TestUnknownRoleIsPermanent(t *testing.T) {
	t.Parallel()
	_, conn, _ := setup(t)
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	p, diags := vaultapprole.New(vaulttest.Env(t, conns), vaulttest.Body(t, "connection = vault.main\nrole_name = \"nope\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, err := p.Create(context.Background(), plugin.Rotation{ID: "r"})
	if err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("Create for an unknown role = %v, want permanent", err)
	}
}

func TestCapacityOption(t *testing.T) {
	t.Parallel()
	srv := &vaulttest.Server{Addr: "http://127.0.0.1:1", RootToken: "unused"}
	conn, _ := srv.Connection(t, "")
	p := newProvider(t, conn, "max_secret_ids = 3\n")
	c, ok := p.(providers.Capacity)
	if !ok || c.MaxKeys() != 3 {
		t.Fatalf("max_secret_ids = 3 gives %T", p)
	}
	if _, ok := p.(providers.Lister); !ok {
		t.Fatal("the limited provider lost List")
	}
	if _, ok := p.(providers.Deactivator); ok {
		t.Fatal("Vault cannot deactivate a secret id, yet the provider claims to")
	}
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	for body, want := range map[string]string{
		"max_secret_ids = 1":             "at least 2",
		"ttl = \"0s\"":                   "Invalid ttl",
		"metadata = { rekey_x = \"y\" }": "reserves",
		"num_uses = -1":                  "num_uses",
	} {
		_, diags := vaultapprole.New(vaulttest.Env(t, conns), vaulttest.Body(t, "connection = vault.main\nrole_name = \"app\"\n"+body))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
}
