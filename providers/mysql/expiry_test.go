//go:build unix

package mysql_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/mysql"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// lifetime reads an account's password_lifetime and password_last_changed
// as MariaDB keeps them (-1: the server default).
func lifetime(t *testing.T, s *dbtest.MariaDB, user string) (days int64, changed time.Time) {
	t.Helper()
	var unix int64
	err := s.Root(t).QueryRow(`SELECT COALESCE(JSON_VALUE(Priv, '$.password_lifetime'), -1), COALESCE(JSON_VALUE(Priv, '$.password_last_changed'), 0)
		FROM mysql.global_priv WHERE User = ? AND Host = '%'`, user).Scan(&days, &unix)
	if err != nil {
		t.Fatal(err)
	}
	return days, time.Unix(unix, 0).UTC()
}

func TestMariaDBSingleExpiry(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	s.Exec(t, "CREATE USER app@'%' IDENTIFIED BY 'old-canary'", "GRANT SELECT ON app.* TO app@'%'")
	p := newProvider(t, s, `username = "app"`, s.AdminPassword)
	ctx, logs := vaulttest.Logger(t)
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("the mysql provider does not take key_ttl")
	}
	list, err := p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 1 || !list[0].ExpiresAt.IsZero() {
		t.Fatalf("List of an account that never expires = %+v, %v", list, err)
	}
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Generation: 1, KeyTTL: 48 * time.Hour})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	days, changed := lifetime(t, s, "app")
	if days != 2 || !k.ExpiresAt.Equal(changed.Add(48*time.Hour)) || !k.CreatedAt.Equal(changed) {
		t.Fatalf("server lifetime %d days from %s; key created %s, expires %s", days, changed, k.CreatedAt, k.ExpiresAt)
	}
	if err := s.Login(ctx, "app", k.Value["password"].Reveal()); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	if list, err := p.(providers.Lister).List(ctx); err != nil || !list[0].ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// The lifetime is the account's: a later password without key_ttl
	// keeps it, counted from its own change, and says so.
	k2, err := p.Create(ctx, plugin.Rotation{ID: "r2", Generation: 2})
	if _, changed := lifetime(t, s, "app"); err != nil || !k2.ExpiresAt.Equal(changed.Add(48*time.Hour)) {
		t.Fatalf("Create without key_ttl: expires %s (changed %s), %v", k2.ExpiresAt, changed, err)
	}
	// An account on the server default: default_password_lifetime counts.
	s.Exec(t, "ALTER USER app@'%' PASSWORD EXPIRE DEFAULT", "SET GLOBAL default_password_lifetime = 30")
	list, err = p.(providers.Lister).List(ctx)
	if _, changed := lifetime(t, s, "app"); err != nil || !list[0].ExpiresAt.Equal(changed.Add(30*24*time.Hour)) {
		t.Fatalf("List on the server's default lifetime = %+v (changed %s), %v", list, changed, err)
	}
	s.Exec(t, "SET GLOBAL default_password_lifetime = 0")
	if list, err := p.(providers.Lister).List(ctx); err != nil || !list[0].ExpiresAt.IsZero() {
		t.Fatalf("List with lifetimes off = %+v, %v", list, err)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String()}, k.Value["password"].Reveal(), k2.Value["password"].Reveal(), "old-canary", s.AdminPassword)
}

func TestMariaDBAlternatingExpiry(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	s.Exec(t, "CREATE USER app_a@'%' IDENTIFIED BY 'pass-a-canary'", "GRANT SELECT ON app.* TO app_a@'%'")
	p := newProvider(t, s, `usernames = ["app_a", "app_b"]`, s.AdminPassword)
	ctx, _ := vaulttest.Logger(t)
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Generation: 1, KeyTTL: 72 * time.Hour})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	days, changed := lifetime(t, s, "app_b")
	if !strings.HasPrefix(k.ID, "app_b@") || days != 3 || !k.ExpiresAt.Equal(changed.Add(72*time.Hour)) {
		t.Fatalf("key %s expires %s; server lifetime %d days from %s", k.ID, k.ExpiresAt, days, changed)
	}
	if days, _ := lifetime(t, s, "app_a"); days != -1 {
		t.Errorf("the active account was given a lifetime of %d days", days)
	}
	if err := s.Login(ctx, "app_b", k.Value["password"].Reveal()); err != nil {
		t.Fatalf("the new account does not log in: %v", err)
	}
	list, err := p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 2 || !list[0].ExpiresAt.IsZero() || !list[1].ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// The next rotation reuses the locked account (ALTER USER).
	if err := p.Delete(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	k2, err := p.Create(ctx, plugin.Rotation{ID: "r2", Generation: 2, KeyTTL: 10 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("Create 2: %v", err)
	}
	days, changed = lifetime(t, s, "app_a")
	if !strings.HasPrefix(k2.ID, "app_a@") || days != 10 || !k2.ExpiresAt.Equal(changed.Add(10*24*time.Hour)) {
		t.Fatalf("key %s expires %s; server lifetime %d days from %s", k2.ID, k2.ExpiresAt, days, changed)
	}
	if err := s.Login(ctx, "app_a", k2.Value["password"].Reveal()); err != nil {
		t.Fatalf("the reused account does not log in: %v", err)
	}
}

func TestMariaDBKeyTTLWholeDays(t *testing.T) {
	p, diags := newProviderNoServer(t)
	if diags != "" {
		t.Fatal(diags)
	}
	ch, ok := p.(providers.KeyTTLChecker)
	if !ok {
		t.Fatal("the mysql provider does not check key_ttl")
	}
	for d, want := range map[time.Duration]string{
		30 * 24 * time.Hour:    "",
		36 * time.Hour:         "whole number of days",
		time.Hour:              "whole number of days",
		65536 * 24 * time.Hour: "at most 65535 days",
	} {
		err := ch.CheckKeyTTL(d)
		switch {
		case want == "" && err != nil:
			t.Errorf("key_ttl %s: %v", d, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("key_ttl %s: %v, want %q", d, err, want)
		}
	}
}

func newProviderNoServer(t *testing.T) (providers.Provider, string) {
	t.Helper()
	pwFile := vaulttest.WriteFile(t, "admin.pw", "not-used\n")
	p, diags := mysql.New(vaulttest.Env(t, nil), vaulttest.Body(t, `host = "db.internal"
username = "app"
admin {
  username = "rekey_admin"
  password_file = "`+pwFile+`"
}
`))
	if diags.HasErrors() {
		return nil, diags.Error()
	}
	return p, ""
}
