//go:build unix

package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/probes/postgres"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func key(s *dbtest.Postgres, user, pw string) plugin.Key {
	return plugin.Key{ID: user + "@1", Value: secret.Fields{
		"username": secret.New(user), "password": secret.New(pw),
		"host": secret.New(s.Host), "port": secret.New(strconv.Itoa(s.Port)), "dbname": secret.New(dbtest.PGDatabase),
	}}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	s.Exec(t, `CREATE ROLE app LOGIN PASSWORD 'app-password-canary'`, `CREATE TABLE items (id int)`, `GRANT SELECT ON items TO app`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mk := func(body string) probes.Probe {
		p, diags := postgres.New(vaulttest.Env(t, nil), vaulttest.Body(t, "sslmode = \"disable\"\n"+body))
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		return p
	}
	p := mk("")
	if p.(probes.Targeter).DefaultTarget() != probes.TargetKey {
		t.Error("the postgres probe tests the key")
	}
	if err := p.Check(ctx, key(s, "app", "app-password-canary")); err != nil {
		t.Fatalf("good key: %v", err)
	}
	err := p.Check(ctx, key(s, "app", "wrong-password-canary"))
	if err == nil || plugin.IsPermanent(err) {
		t.Fatalf("wrong password: %v, want a retryable failure", err)
	}
	if err := mk(`query = "SELECT count(*) FROM items"`).Check(ctx, key(s, "app", "app-password-canary")); err != nil {
		t.Fatalf("custom query: %v", err)
	}
	qerr := mk(`query = "SELECT * FROM pg_authid"`).Check(ctx, key(s, "app", "app-password-canary"))
	if qerr == nil || !strings.Contains(qerr.Error(), "running the query") {
		t.Fatalf("a query the key may not run: %v", qerr)
	}
	k := key(s, "app", "app-password-canary")
	delete(k.Value, "password")
	if err := p.Check(ctx, k); !plugin.IsPermanent(err) {
		t.Fatalf("missing field: %v, want permanent", err)
	}
	k = key(s, "app", "app-password-canary")
	k.Value["port"] = secret.New("1")
	if err := mk("port = "+strconv.Itoa(s.Port)).Check(ctx, k); err != nil {
		t.Fatalf("port from the probe block: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error(), qerr.Error()}, "app-password-canary", "wrong-password-canary")
	if _, diags := postgres.New(vaulttest.Env(t, nil), vaulttest.Body(t, `sslmode = "maybe"`)); !diags.HasErrors() {
		t.Error("a bad sslmode is accepted")
	}
}
