//go:build unix

package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	myprobe "github.com/rekeyhq/rekey/probes/mysql"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/mysql"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func newProvider(t *testing.T, s *dbtest.MariaDB, body, adminPW string) providers.Provider {
	t.Helper()
	pwFile := vaulttest.WriteFile(t, "admin.pw", adminPW+"\n")
	p, diags := mysql.New(vaulttest.Env(t, nil), vaulttest.Body(t, `host = "127.0.0.1"
port = `+strconv.Itoa(s.Port)+`
dbname = "app"
tls = "false"
admin {
  username = "rekey_admin"
  password_file = "`+pwFile+`"
}
`+body))
	if diags.HasErrors() {
		t.Fatalf("provider: %s", diags.Error())
	}
	return p
}

func run(t *testing.T, s *dbtest.MariaDB, user, pw, q string) error {
	t.Helper()
	conn, err := gomysql.NewConnector(s.Config(user, pw))
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	_, err = db.ExecContext(context.Background(), q)
	return err
}

func TestMariaDBAlternating(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	s.Exec(t,
		"CREATE TABLE app.items (id int)", "CREATE TABLE app.audit (id int)",
		"CREATE ROLE app_rw", "GRANT SELECT, INSERT ON app.items TO app_rw",
		"CREATE USER app_a@'%' IDENTIFIED BY 'pass-a-canary'",
		"GRANT app_rw TO app_a@'%'", "SET DEFAULT ROLE app_rw FOR app_a@'%'",
		"GRANT SELECT ON app.audit TO app_a@'%'",
		"GRANT app_rw TO rekey_admin@'%' WITH ADMIN OPTION",
	)
	p := newProvider(t, s, `usernames = ["app_a", "app_b"]`, s.AdminPassword)
	ctx, logs := vaulttest.Logger(t)
	lister, deact := p.(providers.Lister), p.(providers.Deactivator)
	list, err := lister.List(ctx)
	if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].ID, "app_a@") {
		t.Fatalf("List before rotating = %+v, %v", list, err)
	}
	seed := list[0].ID
	k1, err := p.Create(ctx, plugin.Rotation{ID: "r1", Generation: 1})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	pw1 := k1.Value[mysql.FieldPassword].Reveal()
	if !strings.HasPrefix(k1.ID, "app_b@") || k1.Value[mysql.FieldUsername].Reveal() != "app_b" {
		t.Fatalf("key %s", k1.ID)
	}
	for _, q := range []string{"SELECT 1", "SELECT * FROM app.items", "INSERT INTO app.items VALUES (1)", "SELECT * FROM app.audit"} {
		if err := run(t, s, "app_b", pw1, q); err != nil {
			t.Errorf("the clone cannot %s: %v", q, err)
		}
	}
	if err := s.Login(ctx, "app_a", "pass-a-canary"); err != nil {
		t.Fatalf("the active account stopped working: %v", err)
	}
	if list, err := lister.List(ctx); err != nil || len(list) != 2 || list[1].ID != k1.ID {
		t.Fatalf("List after create = %+v, %v", list, err)
	}
	if err := deact.Deactivate(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app_a", "pass-a-canary"); err == nil {
		t.Fatal("a locked account logs in")
	}
	if err := deact.Activate(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app_a", "pass-a-canary"); err != nil {
		t.Fatalf("re-activated: %v", err)
	}
	if err := p.Delete(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app_a", "pass-a-canary"); err == nil {
		t.Fatal("a revoked account logs in")
	}
	if err := p.Delete(ctx, seed); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := deact.Activate(ctx, seed); !errors.Is(err, plugin.ErrNotFound) {
		t.Fatalf("activating a revoked key = %v", err)
	}
	k2, err := p.Create(ctx, plugin.Rotation{ID: "r2", Generation: 2})
	if err != nil {
		t.Fatalf("Create 2: %v", err)
	}
	pw2 := k2.Value[mysql.FieldPassword].Reveal()
	if !strings.HasPrefix(k2.ID, "app_a@") {
		t.Fatalf("second key %s", k2.ID)
	}
	for _, q := range []string{"SELECT * FROM app.items", "SELECT * FROM app.audit"} {
		if err := run(t, s, "app_a", pw2, q); err != nil {
			t.Errorf("the reused account cannot %s: %v", q, err)
		}
	}
	if err := p.Delete(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app_a", pw2); err != nil {
		t.Fatalf("a stale key id locked the reused account: %v", err)
	}
	if err := p.Delete(ctx, k1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app_b", pw1); err == nil {
		t.Fatal("the revoked account logs in")
	}
	if err := p.Delete(ctx, k2.ID); err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("locking the last account = %v", err)
	}
	if _, err := p.Create(ctx, plugin.Rotation{ID: "r3", Generation: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := newProvider(t, s, `usernames = ["app_a", "app_b"]`, s.AdminPassword).Create(ctx, plugin.Rotation{ID: "r4"}); !errors.Is(err, plugin.ErrLimit) {
		t.Fatalf("both unlocked: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String()}, pw1, pw2, "pass-a-canary", s.AdminPassword)
}

func TestMariaDBSingleAndRefusals(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	s.Exec(t, "CREATE USER app@'%' IDENTIFIED BY 'old-canary'", "GRANT SELECT ON app.* TO app@'%'", "CREATE USER locked@'%' IDENTIFIED BY 'x' ACCOUNT LOCK")
	ctx := context.Background()
	p := newProvider(t, s, `username = "app"`, s.AdminPassword)
	if _, ok := p.(providers.Deactivator); ok {
		t.Fatal("a single account must not be deactivatable")
	}
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app", k.Value[mysql.FieldPassword].Reveal()); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := s.Login(ctx, "app", "old-canary"); err == nil {
		t.Fatal("the old password still works")
	}
	var stmt string
	if err := s.Root(t).QueryRowContext(ctx, "SELECT JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv WHERE User = 'app'").Scan(&stmt); err != nil || !strings.HasPrefix(stmt, "*") {
		t.Errorf("stored %q, %v", stmt, err)
	}
	for body, want := range map[string]string{`username = "missing"`: "does not exist", `username = "locked"`: "locked"} {
		if _, err := newProvider(t, s, body, s.AdminPassword).Create(ctx, plugin.Rotation{ID: "r"}); !plugin.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", body, err)
		}
	}
	_, err = newProvider(t, s, `username = "app"`, "wrong-admin-canary").Create(ctx, plugin.Rotation{ID: "r"})
	if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "admin credential was refused") {
		t.Fatalf("wrong admin: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error()}, "wrong-admin-canary")
	for body, want := range map[string]string{
		`username = "a'; DROP USER root; --"`: "injection",
		`usernames = ["a"]`:                   "exactly two",
		"username = \"a\"\ntls = \"maybe\"":   "tls",
	} {
		_, diags := mysql.New(vaulttest.Env(t, nil), vaulttest.Body(t, "host = \"h\"\n"+body+"\nadmin {\n username = \"x\"\n password_env = \"E\"\n}"))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
}

func TestMySQLProbe(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	s.Exec(t, "CREATE TABLE app.items (id int)", "CREATE USER app@'%' IDENTIFIED BY 'probe-canary'", "GRANT SELECT ON app.items TO app@'%'")
	key := plugin.Key{ID: "app@x", Value: secret.Fields{
		"username": secret.New("app"), "password": secret.New("probe-canary"),
		"host": secret.New(s.Host), "port": secret.New(strconv.Itoa(s.Port)), "dbname": secret.New("app"),
	}}
	mk := func(body string) probes.Probe {
		p, diags := myprobe.New(vaulttest.Env(t, nil), vaulttest.Body(t, "tls = \"false\"\n"+body))
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		return p
	}
	ctx := context.Background()
	if err := mk(`query = "SELECT COUNT(*) FROM items"`).Check(ctx, key); err != nil {
		t.Fatalf("good key: %v", err)
	}
	qerr := mk(`query = "SELECT * FROM mysql.user"`).Check(ctx, key)
	if qerr == nil {
		t.Fatal("a query the key may not run passes")
	}
	key.Value["password"] = secret.New("wrong-canary")
	perr := mk("").Check(ctx, key)
	if perr == nil || plugin.IsPermanent(perr) {
		t.Fatalf("wrong password: %v, want a retryable failure", perr)
	}
	vaulttest.AssertNoLeak(t, []string{qerr.Error(), perr.Error()}, "probe-canary", "wrong-canary")
}
