//go:build unix

package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/postgres"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// validUntil reads a role's VALID UNTIL as the server holds it: "null",
// "infinity" or an RFC 3339 time.
func validUntil(t *testing.T, s *dbtest.Postgres, role string) string {
	t.Helper()
	var v pgtype.Timestamptz
	if err := s.Super(t).QueryRow(ctxT(t), "SELECT rolvaliduntil FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
		t.Fatal(err)
	}
	switch {
	case !v.Valid:
		return "null"
	case v.InfinityModifier == pgtype.Infinity:
		return "infinity"
	}
	return v.Time.UTC().Format(time.RFC3339)
}

func near(got, want time.Time) bool {
	d := got.Sub(want)
	return d > -10*time.Second && d < 10*time.Second
}

func TestSingleRoleExpiry(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	s.Exec(t, `CREATE ROLE app LOGIN PASSWORD 'old-password' VALID UNTIL '2099-01-01 00:00:00+00'`)
	p := newProvider(t, s, `username = "app"`)
	ctx, logs := vaulttest.Logger(t)
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("the postgres provider does not take key_ttl")
	}
	admin := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	list, err := p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 1 || !list[0].ExpiresAt.Equal(admin) {
		t.Fatalf("List of a role with VALID UNTIL = %+v, %v", list, err)
	}
	// No key_ttl: the administrator's VALID UNTIL stays and is reported.
	k0, err := p.Create(ctx, plugin.Rotation{ID: "rot-0", Policy: "db", Generation: 1})
	if err != nil || !k0.ExpiresAt.Equal(admin) || validUntil(t, s, "app") != "2099-01-01T00:00:00Z" {
		t.Fatalf("Create without key_ttl: expires %s, server %s, %v", k0.ExpiresAt, validUntil(t, s, "app"), err)
	}
	// key_ttl: VALID UNTIL is now + key_ttl, and the key says so.
	k1, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "db", Generation: 2, KeyTTL: 2 * time.Hour})
	if err != nil {
		t.Fatalf("Create with key_ttl: %v", err)
	}
	if !near(k1.ExpiresAt, time.Now().Add(2*time.Hour)) || validUntil(t, s, "app") != k1.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Fatalf("key expires %s, server VALID UNTIL %s", k1.ExpiresAt, validUntil(t, s, "app"))
	}
	if err := login(t, s, k1); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	list, err = p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 1 || !list[0].ExpiresAt.Equal(k1.ExpiresAt) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// key_ttl removed: the expiry rekey set is cleared, not inherited.
	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-2", Policy: "db", Generation: 3})
	if err != nil || !k2.ExpiresAt.IsZero() || validUntil(t, s, "app") != "infinity" {
		t.Fatalf("Create after key_ttl was removed: expires %s, server %s, %v", k2.ExpiresAt, validUntil(t, s, "app"), err)
	}
	if list, err := p.(providers.Lister).List(ctx); err != nil || !list[0].ExpiresAt.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// A VALID UNTIL an administrator set that has passed: a new password
	// would not work, so rekey refuses and says what to do.
	s.Exec(t, `ALTER ROLE app VALID UNTIL '2001-01-01 00:00:00+00'`)
	_, err = p.Create(ctx, plugin.Rotation{ID: "rot-3", Policy: "db", Generation: 4})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "has passed") || !strings.Contains(err.Error(), "key_ttl") {
		t.Fatalf("Create on an expired role = %v, want a permanent refusal naming key_ttl", err)
	}
	if _, err := p.Create(ctx, plugin.Rotation{ID: "rot-3", Policy: "db", Generation: 4, KeyTTL: time.Hour}); err != nil {
		t.Fatalf("key_ttl renews an expired role: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String()}, k1.Value[postgres.FieldPassword].Reveal(), s.AdminPassword)
}

func TestAlternatingRolesExpiry(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	setupApp(t, s, "app_a")
	p := newProvider(t, s, `usernames = ["app_a", "app_b"]`)
	ctx, _ := vaulttest.Logger(t)
	lister := p.(providers.Lister)
	k1, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "db", Generation: 1, KeyTTL: time.Hour})
	if err != nil {
		t.Fatalf("Create 1: %v", err)
	}
	if k1.ID != "app_b@1" || !near(k1.ExpiresAt, time.Now().Add(time.Hour)) || validUntil(t, s, "app_b") != k1.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Fatalf("key %s expires %s, server VALID UNTIL %s", k1.ID, k1.ExpiresAt, validUntil(t, s, "app_b"))
	}
	if validUntil(t, s, "app_a") != "null" {
		t.Errorf("the active role was touched: VALID UNTIL %s", validUntil(t, s, "app_a"))
	}
	mustLogin(t, s, "app_b", k1.Value[postgres.FieldPassword].Reveal())
	list, err := lister.List(ctx)
	if err != nil || len(list) != 2 || !list[0].ExpiresAt.IsZero() || !list[1].ExpiresAt.Equal(k1.ExpiresAt) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := p.Delete(ctx, "app_a@0"); err != nil {
		t.Fatal(err)
	}
	// Without key_ttl the standby does not inherit the expiry rekey gave
	// the active role.
	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-2", Policy: "db", Generation: 2})
	if err != nil || k2.ID != "app_a@2" || !k2.ExpiresAt.IsZero() || validUntil(t, s, "app_a") != "infinity" {
		t.Fatalf("Create 2: key %s expires %s, server %s, %v", k2.ID, k2.ExpiresAt, validUntil(t, s, "app_a"), err)
	}
	// A VALID UNTIL an administrator set on the active role is cloned.
	if err := p.Delete(ctx, "app_b@1"); err != nil {
		t.Fatal(err)
	}
	s.Exec(t, `ALTER ROLE app_a VALID UNTIL '2099-06-01 00:00:00+00'`)
	k3, err := p.Create(ctx, plugin.Rotation{ID: "rot-3", Policy: "db", Generation: 3})
	if err != nil || k3.ID != "app_b@3" || !k3.ExpiresAt.Equal(time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC)) || validUntil(t, s, "app_b") != "2099-06-01T00:00:00Z" {
		t.Fatalf("Create 3: key %s expires %s, server %s, %v", k3.ID, k3.ExpiresAt, validUntil(t, s, "app_b"), err)
	}
	// Deactivating and re-activating keeps rekey's own expiry recognised.
	if err := p.Delete(ctx, "app_a@2"); err != nil {
		t.Fatal(err)
	}
	k4, err := p.Create(ctx, plugin.Rotation{ID: "rot-4", Policy: "db", Generation: 4, KeyTTL: 3 * time.Hour})
	if err != nil || k4.ID != "app_a@4" {
		t.Fatalf("Create 4: %v", err)
	}
	deact := p.(providers.Deactivator)
	if err := deact.Deactivate(ctx, k4.ID); err != nil {
		t.Fatal(err)
	}
	if err := deact.Activate(ctx, k4.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, "app_b@3"); err != nil {
		t.Fatal(err)
	}
	k5, err := p.Create(ctx, plugin.Rotation{ID: "rot-5", Policy: "db", Generation: 5})
	if err != nil || !k5.ExpiresAt.IsZero() || validUntil(t, s, "app_b") != "infinity" {
		t.Fatalf("Create 5: expires %s, server %s, %v", k5.ExpiresAt, validUntil(t, s, "app_b"), err)
	}
}
