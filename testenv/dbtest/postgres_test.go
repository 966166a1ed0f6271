//go:build unix

package dbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/testenv/dbtest"
)

func TestPostgresStartsWithALeastPrivilegeAdmin(t *testing.T) {
	t.Parallel()
	s := dbtest.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Login(ctx, dbtest.PGAdmin, s.AdminPassword); err != nil {
		t.Fatalf("admin login: %v", err)
	}
	if err := s.Login(ctx, dbtest.PGAdmin, "wrong"); err == nil {
		t.Fatal("a wrong password logs in: host auth is not scram-sha-256")
	}
	var super, createrole bool
	if err := s.Super(t).QueryRow(ctx, "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1", dbtest.PGAdmin).Scan(&super, &createrole); err != nil {
		t.Fatal(err)
	}
	if super || !createrole {
		t.Fatalf("admin rolsuper=%v rolcreaterole=%v, want false, true", super, createrole)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("still running after Kill")
	}
	if err := s.Login(ctx, dbtest.PGAdmin, s.AdminPassword); err == nil {
		t.Fatal("login works with the server killed")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, dbtest.PGAdmin, s.AdminPassword); err != nil {
		t.Fatalf("admin login after restart: %v", err)
	}
}

func TestMariaDBStartsWithALeastPrivilegeAdmin(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Login(ctx, dbtest.MyAdmin, s.AdminPassword); err != nil {
		t.Fatalf("admin login: %v", err)
	}
	if err := s.Login(ctx, dbtest.MyAdmin, "wrong"); err == nil {
		t.Fatal("a wrong password logs in")
	}
}
