//go:build unix

package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
)

// EnvPGBinDir names the environment variable that overrides where the
// PostgreSQL server binaries (initdb, postgres) are looked for; by default
// the newest /usr/lib/postgresql/*/bin.
const EnvPGBinDir = "REKEY_PG_BINDIR"

// Names in the PostgreSQL template.
const (
	// PGSuperuser is the bootstrap superuser.
	PGSuperuser = "postgres"
	// PGAdmin is the non-superuser admin role rekey uses in tests: LOGIN,
	// CREATEROLE, pg_signal_backend and pg_read_all_stats.
	PGAdmin = "rekey_admin"
	// PGDatabase is the database the tests use.
	PGDatabase = "app"
)

// Postgres is a running PostgreSQL server.
type Postgres struct {
	Host string
	Port int
	// Dir is the server's temporary directory (data, socket, log).
	Dir string
	// LogPath receives the server's output.
	LogPath string
	// SuperPassword and AdminPassword log in as PGSuperuser and PGAdmin.
	SuperPassword string
	AdminPassword string

	bin string
	server
}

type pgTemplate struct {
	bin, dir      string
	super, admin  string
	err           error
	unavailableAt string
}

var (
	pgOnce sync.Once
	pgTmpl pgTemplate
)

func pgBinDir() (string, error) {
	if d := os.Getenv(EnvPGBinDir); d != "" {
		return d, nil
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) == 0 {
		return "", errors.New("PostgreSQL server not installed (Debian package postgresql; testenv/test-all.sh installs it)")
	}
	sort.Slice(m, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi < vj
	})
	return filepath.Dir(m[len(m)-1]), nil
}

// template returns the cached template data directory, making it once.
func template() pgTemplate {
	pgOnce.Do(func() {
		bin, err := pgBinDir()
		if err != nil {
			pgTmpl.unavailableAt = err.Error()
			return
		}
		pgTmpl.bin = bin
		acct, err := serviceAccount("postgres")
		if err != nil {
			pgTmpl.err = err
			return
		}
		final := filepath.Join(os.TempDir(), fmt.Sprintf("rekey-pgtemplate-%d-%s-v1", os.Geteuid(), filepath.Base(filepath.Dir(bin))))
		if _, err := os.Stat(filepath.Join(final, "ready")); err != nil {
			if err := buildTemplate(bin, acct, final); err != nil {
				pgTmpl.err = fmt.Errorf("making the PostgreSQL template: %w", err)
				return
			}
		}
		pgTmpl.dir = final
		super, err1 := os.ReadFile(filepath.Join(final, "super.pw"))
		admin, err2 := os.ReadFile(filepath.Join(final, "admin.pw"))
		if err := errors.Join(err1, err2); err != nil {
			pgTmpl.err = err
			return
		}
		pgTmpl.super, pgTmpl.admin = string(super), string(admin)
	})
	return pgTmpl
}

func buildTemplate(bin string, acct account, final string) error {
	tmp, err := os.MkdirTemp(os.TempDir(), "rekey-pgtemplate-build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	super, admin := RandomHex(16), RandomHex(16)
	pw := filepath.Join(tmp, "super.pw")
	if err := errors.Join(
		os.WriteFile(pw, []byte(super), 0o600),
		os.WriteFile(filepath.Join(tmp, "admin.pw"), []byte(admin), 0o600),
		acct.chown(tmp, pw),
	); err != nil {
		return err
	}
	data := filepath.Join(tmp, "data")
	initdb := acct.command(filepath.Join(bin, "initdb"), "-D", data, "-U", PGSuperuser, "--pwfile="+pw,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	s := &Postgres{Host: "127.0.0.1", Dir: tmp, LogPath: filepath.Join(tmp, "build.log"), SuperPassword: super, bin: bin, server: server{acct: acct}}
	if s.Port, err = testproc.FreePort(); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	defer s.proc.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, s.config(PGSuperuser, super, "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, q := range []string{
		"CREATE ROLE " + PGAdmin + " LOGIN CREATEROLE PASSWORD '" + admin + "'",
		"GRANT pg_signal_backend, pg_read_all_stats TO " + PGAdmin,
		"CREATE DATABASE " + PGDatabase,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	s.proc.Stop(syscall.SIGINT)
	return publishTemplate(tmp, final, "build.log")
}

// StartPostgres starts a server from a copy of the template for the test
// and kills it when the test ends. When the test fails, the tail of the
// server's log is printed.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	tm := template()
	if tm.unavailableAt != "" {
		unavailable(t, tm.unavailableAt)
		return nil
	}
	if tm.err != nil {
		t.Fatal(tm.err)
	}
	acct, dir := serverDir(t, "postgres", "rekey-pg-*", tm.dir)
	s := &Postgres{Host: "127.0.0.1", Dir: dir, LogPath: filepath.Join(dir, "postgres.log"),
		SuperPassword: tm.super, AdminPassword: tm.admin, bin: tm.bin, server: server{acct: acct}}
	var err error
	if s.Port, err = testproc.FreePort(); err != nil {
		t.Fatal(err)
	}
	startForTest(t, "postgres", s.LogPath, 40, s, s.Start)
	return s
}

func (s *Postgres) start() error {
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if err := s.acct.chown(s.LogPath); err != nil {
		return err
	}
	cmd := s.acct.command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.Dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(s.Port), "-k", s.Dir,
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=16MB")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := testproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.setProc(p)
	return nil
}

// Start starts the server (again, after Kill) and waits until the
// superuser can log in.
func (s *Postgres) Start() error {
	if err := s.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return fmt.Errorf("postgres did not become ready: %w\n%s", err, testproc.Tail(s.LogPath, 30, nil))
	}
	return nil
}

// Running reports whether the server process is alive.
func (s *Postgres) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

func (s *Postgres) waitReady(ctx context.Context) error {
	return waitAnswer(ctx, "postgres", s.LogPath, s.proc, 50*time.Millisecond, func(ctx context.Context) error {
		c, err := pgx.ConnectConfig(ctx, s.config(PGSuperuser, s.SuperPassword, "postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
}

func (s *Postgres) config(user, password, db string) *pgx.ConnConfig {
	cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=10")
	if err != nil {
		panic(err)
	}
	cfg.Host, cfg.Port = s.Host, uint16(s.Port)
	cfg.User, cfg.Password, cfg.Database = user, password, db
	cfg.RuntimeParams = map[string]string{"application_name": "rekey-test"}
	return cfg
}

// Config returns a connection configuration for user in PGDatabase.
func (s *Postgres) Config(user, password string) *pgx.ConnConfig {
	return s.config(user, password, PGDatabase)
}

// Login opens a new connection as user in PGDatabase, runs SELECT 1 and
// closes it.
func (s *Postgres) Login(ctx context.Context, user, password string) error {
	c, err := pgx.ConnectConfig(ctx, s.Config(user, password))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var one int
	return c.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Super opens a superuser connection to PGDatabase, closed when the test
// ends.
func (s *Postgres) Super(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, s.Config(PGSuperuser, s.SuperPassword))
	if err != nil {
		t.Fatalf("superuser connection: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Exec runs statements as the superuser in PGDatabase.
func (s *Postgres) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	c := s.Super(t)
	for _, q := range stmts {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
