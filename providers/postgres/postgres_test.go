//go:build unix

package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/postgres"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func newProvider(t *testing.T, s *dbtest.Postgres, body string) providers.Provider {
	t.Helper()
	pwFile := vaulttest.WriteFile(t, "admin.pw", s.AdminPassword+"\n")
	src := `host = "127.0.0.1"
port = ` + itoa(s.Port) + `
dbname = "app"
sslmode = "disable"
admin {
  username = "rekey_admin"
  password_file = "` + pwFile + `"
}
` + body
	p, diags := postgres.New(vaulttest.Env(t, nil), vaulttest.Body(t, src))
	if diags.HasErrors() {
		t.Fatalf("provider: %s", diags.Error())
	}
	return p
}

func itoa(n int) string { return strconv.Itoa(n) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func login(t *testing.T, s *dbtest.Postgres, k plugin.Key) error {
	t.Helper()
	return s.Login(ctxT(t), k.Value[postgres.FieldUsername].Reveal(), k.Value[postgres.FieldPassword].Reveal())
}

func mustLogin(t *testing.T, s *dbtest.Postgres, user, pw string) {
	t.Helper()
	if err := s.Login(ctxT(t), user, pw); err != nil {
		t.Fatalf("%s cannot log in: %v", user, err)
	}
}

func mustFailLogin(t *testing.T, s *dbtest.Postgres, user, pw string) {
	t.Helper()
	if err := s.Login(ctxT(t), user, pw); err == nil {
		t.Fatalf("%s still logs in", user)
	}
}

// selectAs runs a query as user and returns its error.
func selectAs(t *testing.T, s *dbtest.Postgres, user, pw, q string) error {
	t.Helper()
	c, err := pgx.ConnectConfig(ctxT(t), s.Config(user, pw))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctxT(t), q)
	return err
}

func TestSingleRole(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	s.Exec(t, `CREATE ROLE app LOGIN PASSWORD 'old-password'`)
	p := newProvider(t, s, `username = "app"`)
	ctx, logs := vaulttest.Logger(t)
	if p.Target() != "postgres:127.0.0.1:"+itoa(s.Port)+":app" {
		t.Errorf("Target = %q", p.Target())
	}
	if _, ok := p.(providers.Deactivator); ok {
		t.Fatal("a single role must not be deactivatable: NOLOGIN would lock out the new password too")
	}
	if _, ok := p.(interface{ SingleKey() bool }); !ok {
		t.Error("the single strategy does not say it holds one key")
	}
	list, err := p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "app@0" || list[0].Status != plugin.KeyActive {
		t.Fatalf("List before any rotation = %+v, %v", list, err)
	}
	k, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "db", Generation: 1})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	pw := k.Value[postgres.FieldPassword].Reveal()
	if k.ID != "app@1" || len(pw) != 32 || k.Value[postgres.FieldDBName].Reveal() != "app" || k.Value[postgres.FieldEngine].Reveal() != "postgres" {
		t.Fatalf("key %s, fields %v", k.ID, k.Value.Names())
	}
	if uri := k.Value[postgres.FieldURI].Reveal(); uri != "postgres://app:"+pw+"@127.0.0.1:"+itoa(s.Port)+"/app?sslmode=disable" {
		t.Errorf("uri is not the expected shape")
	}
	if err := login(t, s, k); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	mustFailLogin(t, s, "app", "old-password")
	// The password reached the server only as a SCRAM verifier.
	var stored string
	if err := s.Super(t).QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").Scan(&stored); err != nil || !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored password %.20q, %v", stored, err)
	}
	list, err = p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "app@1" || list[0].RotationID != "rot-1" || list[0].CreatedAt.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// The old generation is gone already; deleting it changes nothing.
	if err := p.Delete(ctx, "app@0"); err != nil {
		t.Fatal(err)
	}
	if err := login(t, s, k); err != nil {
		t.Fatalf("deleting the old generation broke the new one: %v", err)
	}
	// Deleting the current generation cannot restore the old password: it
	// keeps the new one and says so.
	if err := p.Delete(ctx, "app@1"); err != nil {
		t.Fatal(err)
	}
	if err := login(t, s, k); err != nil {
		t.Fatalf("rolling back locked the role out: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot be restored") {
		t.Error("the log does not say the old password cannot be restored")
	}
	vaulttest.AssertNoLeak(t, []string{logs.String(), stored}, pw, s.AdminPassword)
}

// setupApp makes the objects an application role uses: a group role with
// privileges on one table, and a direct grant on another.
func setupApp(t *testing.T, s *dbtest.Postgres, active string) {
	t.Helper()
	s.Exec(t,
		`CREATE TABLE items (id int)`, `CREATE TABLE audit (id int)`,
		`CREATE ROLE app_rw NOLOGIN`, `GRANT SELECT, INSERT ON items TO app_rw`,
		`CREATE ROLE `+pgx.Identifier{active}.Sanitize()+` LOGIN CONNECTION LIMIT 50 PASSWORD 'pass-a'`,
		`GRANT app_rw TO `+pgx.Identifier{active}.Sanitize(),
		`GRANT SELECT ON audit TO `+pgx.Identifier{active}.Sanitize(),
	)
}

func TestAlternatingRoles(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	setupApp(t, s, "app_a")
	p := newProvider(t, s, `usernames = ["app_a", "app_b"]`)
	ctx, logs := vaulttest.Logger(t)
	lister, deact := p.(providers.Lister), p.(providers.Deactivator)
	if c, ok := p.(providers.Capacity); !ok || c.MaxKeys() != 2 {
		t.Fatal("alternating roles hold at most 2 keys")
	}
	list, err := lister.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "app_a@0" {
		t.Fatalf("List before any rotation = %+v, %v", list, err)
	}

	k1, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "db", Generation: 1})
	if err != nil {
		t.Fatalf("Create 1: %v", err)
	}
	pw1 := k1.Value[postgres.FieldPassword].Reveal()
	if k1.ID != "app_b@1" || k1.Value[postgres.FieldUsername].Reveal() != "app_b" {
		t.Fatalf("first key %s", k1.ID)
	}
	mustLogin(t, s, "app_b", pw1)
	mustLogin(t, s, "app_a", "pass-a")
	for _, q := range []string{"SELECT * FROM items", "INSERT INTO items VALUES (1)", "SELECT * FROM audit"} {
		if err := selectAs(t, s, "app_b", pw1, q); err != nil {
			t.Errorf("the clone cannot %s: %v", q, err)
		}
	}
	var connLimit int
	if err := s.Super(t).QueryRow(ctx, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app_b'").Scan(&connLimit); err != nil || connLimit != 50 {
		t.Errorf("clone connection limit %d, %v", connLimit, err)
	}
	list, err = lister.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "app_a@0" || list[1].ID != "app_b@1" || list[1].RotationID != "rot-1" {
		t.Fatalf("List after create = %+v, %v", list, err)
	}

	// Soak: deactivate the old role, bring it back, then revoke it.
	if err := deact.Deactivate(ctx, "app_a@0"); err != nil {
		t.Fatal(err)
	}
	mustFailLogin(t, s, "app_a", "pass-a")
	if list, _ := lister.List(ctx); len(list) != 2 || list[0].Status != plugin.KeyInactive {
		t.Fatalf("List with a deactivated key = %+v", list)
	}
	if err := deact.Activate(ctx, "app_a@0"); err != nil {
		t.Fatal(err)
	}
	mustLogin(t, s, "app_a", "pass-a")
	if err := p.Delete(ctx, "app_a@0"); err != nil {
		t.Fatal(err)
	}
	mustFailLogin(t, s, "app_a", "pass-a")
	if err := p.Delete(ctx, "app_a@0"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := deact.Activate(ctx, "app_a@0"); !errors.Is(err, plugin.ErrNotFound) {
		t.Fatalf("activating a revoked key = %v, want not found", err)
	}
	var exists bool
	if err := s.Super(t).QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_a')").Scan(&exists); err != nil || !exists {
		t.Fatal("the old role was dropped")
	}
	mustLogin(t, s, "app_b", pw1)

	// The next rotation reuses the locked role.
	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-2", Policy: "db", Generation: 2})
	if err != nil {
		t.Fatalf("Create 2: %v", err)
	}
	pw2 := k2.Value[postgres.FieldPassword].Reveal()
	if k2.ID != "app_a@2" {
		t.Fatalf("second key %s", k2.ID)
	}
	mustLogin(t, s, "app_a", pw2)
	mustLogin(t, s, "app_b", pw1)
	for _, q := range []string{"SELECT * FROM items", "SELECT * FROM audit"} {
		if err := selectAs(t, s, "app_a", pw2, q); err != nil {
			t.Errorf("the reused role cannot %s: %v", q, err)
		}
	}
	// A stale key id of the reused role is gone: deleting it must not lock
	// the new password.
	if err := p.Delete(ctx, "app_a@0"); err != nil {
		t.Fatal(err)
	}
	mustLogin(t, s, "app_a", pw2)
	if err := p.Delete(ctx, "app_b@1"); err != nil {
		t.Fatal(err)
	}
	mustFailLogin(t, s, "app_b", pw1)
	// Neither role can be left locked.
	if err := p.Delete(ctx, "app_a@2"); err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("locking the last role that can log in = %v, want a permanent refusal", err)
	}
	mustLogin(t, s, "app_a", pw2)
	vaulttest.AssertNoLeak(t, []string{logs.String()}, pw1, pw2, s.AdminPassword)
}

func TestAlternatingCreateIsIdempotentAndFindable(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	setupApp(t, s, "App User")
	p := newProvider(t, s, `usernames = ["App User", "App User 2"]`)
	ctx := ctxT(t)
	rot := plugin.Rotation{ID: "rot-crash", Policy: "db", Generation: 4}
	k1, err := p.Create(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := p.Create(ctx, rot)
	if err != nil {
		t.Fatalf("Create again for the same rotation: %v", err)
	}
	if k1.ID != "App User 2@4" || k2.ID != k1.ID {
		t.Fatalf("keys %s and %s", k1.ID, k2.ID)
	}
	mustLogin(t, s, "App User 2", k2.Value[postgres.FieldPassword].Reveal())
	mustLogin(t, s, "App User", "pass-a")
	list, err := p.(providers.Lister).List(ctx)
	if err != nil || len(list) != 2 || list[1].RotationID != "rot-crash" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := p.Delete(ctx, list[1].ID); err != nil {
		t.Fatal(err)
	}
	mustLogin(t, s, "App User", "pass-a")
	mustFailLogin(t, s, "App User 2", k2.Value[postgres.FieldPassword].Reveal())
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	s.Exec(t, `CREATE ROLE both_a LOGIN PASSWORD 'x'`, `CREATE ROLE both_b LOGIN PASSWORD 'y'`, `CREATE ROLE locked NOLOGIN`)
	ctx := ctxT(t)
	rot := plugin.Rotation{ID: "r", Policy: "db", Generation: 1}

	_, err := newProvider(t, s, `username = "missing"`).Create(ctx, rot)
	if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing role: %v", err)
	}
	_, err = newProvider(t, s, `username = "locked"`).Create(ctx, rot)
	if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "NOLOGIN") {
		t.Errorf("NOLOGIN role: %v", err)
	}
	_, err = newProvider(t, s, `usernames = ["missing_a", "missing_b"]`).Create(ctx, rot)
	if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "can log in") {
		t.Errorf("no alternating role: %v", err)
	}
	_, err = newProvider(t, s, `usernames = ["both_a", "both_b"]`).Create(ctx, rot)
	if !errors.Is(err, plugin.ErrLimit) {
		t.Errorf("both roles can log in: %v", err)
	}
	mustLogin(t, s, "both_a", "x")
	mustLogin(t, s, "both_b", "y")

	wrong := vaulttest.WriteFile(t, "wrong.pw", "not-the-admin-password")
	p, diags := postgres.New(vaulttest.Env(t, nil), vaulttest.Body(t, `host = "127.0.0.1"
port = `+itoa(s.Port)+`
sslmode = "disable"
username = "both_a"
admin {
  username = "rekey_admin"
  password_file = "`+wrong+`"
}`))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, err = p.Create(ctx, rot)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "admin credential was refused") || !strings.Contains(err.Error(), wrong) {
		t.Fatalf("wrong admin password: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error()}, "not-the-admin-password")
	mustLogin(t, s, "both_a", "x")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	env := vaulttest.Env(t, nil)
	admin := "\nadmin {\n  username = \"rekey_admin\"\n  password_env = \"PGADMIN\"\n}\n"
	for body, want := range map[string]string{
		`username = "app\"; DROP ROLE postgres; --"`:               "injection",
		`username = "app'; DROP ROLE postgres; --"`:                "injection",
		`usernames = ["a", "b--x"]`:                                "injection",
		`usernames = ["a"]`:                                        "exactly two",
		`usernames = ["a", "a"]`:                                   "exactly two",
		`username = "a"` + "\nstrategy = \"alternating\"":          "two roles",
		`username = "a"` + "\nstrategy = \"triple\"":               "not supported",
		`username = "a"` + "\nsslmode = \"sometimes\"":             "sslmode",
		`username = "a"` + "\npassword_length = 8":                 "password_length",
		`username = "a"` + "\nterminate_sessions_after = \"soon\"": "terminate_sessions_after",
		`username = "` + strings.Repeat("x", 64) + `"`:             "longer than 63",
	} {
		_, diags := postgres.New(env, vaulttest.Body(t, "host = \"db\"\n"+body+admin))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
	for body, want := range map[string]string{
		"admin {\n username = \"x\"\n}": "exactly one",
		"admin {\n username = \"x\"\n password_file = \"f\"\n password_env = \"E\"\n}": "exactly one",
		"admin {\n username = \"x\"\n vault_path = \"secret/data/x\"\n}":               "vault_connection",
		"": "Missing admin block",
	} {
		_, diags := postgres.New(env, vaulttest.Body(t, "host = \"db\"\nusername = \"app\"\n"+body))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
	p, diags := postgres.New(env, vaulttest.Body(t, "host = \"db\"\nusernames = [\"App User\", \"app-2\"]"+admin))
	if diags.HasErrors() {
		t.Fatalf("names that need quoting are fine: %s", diags.Error())
	}
	if p.Target() != "postgres:db:5432:App User|app-2" {
		t.Errorf("Target = %q", p.Target())
	}
}

func TestSessionsAndTermination(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	setupApp(t, s, "app_a")
	p := newProvider(t, s, `usernames = ["app_a", "app_b"]`+"\nterminate_sessions_after = \"1s\"")
	ctx := ctxT(t)
	ur := p.(providers.UsageReporter)
	if ur.UsageReportingDelay() != 0 {
		t.Error("sessions are seen live")
	}
	if lu, err := ur.LastUsed(ctx, "app_a@0"); err != nil || !lu.IsZero() {
		t.Fatalf("LastUsed with no session = %v, %v", lu, err)
	}
	held, err := pgx.ConnectConfig(ctx, s.Config("app_a", "pass-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(context.Background())
	if lu, err := ur.LastUsed(ctx, "app_a@0"); err != nil || time.Since(lu) > time.Minute {
		t.Fatalf("LastUsed with a session open = %v, %v", lu, err)
	}
	if _, err := p.Create(ctx, plugin.Rotation{ID: "r1", Policy: "db", Generation: 1}); err != nil {
		t.Fatal(err)
	}
	// Sessions of the old role are ended once terminate_sessions_after has
	// passed since the new password was set.
	deadline := time.Now().Add(time.Minute)
	for {
		lu, err := ur.LastUsed(ctx, "app_a@0")
		if err != nil {
			t.Fatal(err)
		}
		if lu.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old role's session was never ended")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := held.Ping(ctx); err == nil {
		t.Fatal("the old role's session still answers")
	}
}
