//go:build unix

package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
)

// Names in the MariaDB template.
const (
	// MyAdmin is the non-root admin user rekey uses in tests.
	MyAdmin = "rekey_admin"
	// MyDatabase is the database the tests use.
	MyDatabase = "app"
)

// MyAdminGrants are the privileges of MyAdmin: the least the mysql
// provider needs, plus the privileges it may hand on to clones (here,
// everything on the test database, with GRANT OPTION).
var MyAdminGrants = []string{
	"GRANT CREATE USER, PROCESS ON *.* TO " + MyAdmin + "@'%'",
	"GRANT SELECT ON mysql.* TO " + MyAdmin + "@'%'",
	// MariaDB checks UPDATE on the mysql database for SET DEFAULT ROLE ...
	// FOR another account: needed only to copy a default role.
	"GRANT UPDATE ON mysql.* TO " + MyAdmin + "@'%'",
	"GRANT ALL PRIVILEGES ON " + MyDatabase + ".* TO " + MyAdmin + "@'%' WITH GRANT OPTION",
}

// MariaDB is a running MariaDB server.
type MariaDB struct {
	Host    string
	Port    int
	Dir     string
	LogPath string
	// Socket is the Unix socket; root logs in through it without a
	// password.
	Socket        string
	AdminPassword string

	server
}

type myTemplate struct {
	dir, admin    string
	err           error
	unavailableAt string
}

var (
	myOnce sync.Once
	myTmpl myTemplate
)

func myTemplateDir() myTemplate {
	myOnce.Do(func() {
		if _, err := exec.LookPath("mariadbd"); err != nil {
			if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil {
				myTmpl.unavailableAt = "MariaDB not installed (Debian package mariadb-server; testenv/test-all.sh installs it)"
				return
			}
		}
		acct, err := serviceAccount("mysql")
		if err != nil {
			myTmpl.err = err
			return
		}
		final := filepath.Join(os.TempDir(), fmt.Sprintf("rekey-mytemplate-%d-v1", os.Geteuid()))
		if _, err := os.Stat(filepath.Join(final, "ready")); err != nil {
			if err := buildMyTemplate(acct, final); err != nil {
				myTmpl.err = fmt.Errorf("making the MariaDB template: %w", err)
				return
			}
		}
		admin, err := os.ReadFile(filepath.Join(final, "admin.pw"))
		if err != nil {
			myTmpl.err = err
			return
		}
		myTmpl.dir, myTmpl.admin = final, string(admin)
	})
	return myTmpl
}

func mariadbd() string {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "/usr/sbin/mariadbd"
}

func buildMyTemplate(acct account, final string) error {
	tmp, err := os.MkdirTemp(os.TempDir(), "rekey-mytemplate-build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	admin := RandomHex(16)
	if err := errors.Join(os.WriteFile(filepath.Join(tmp, "admin.pw"), []byte(admin), 0o600), acct.chown(tmp)); err != nil {
		return err
	}
	data := filepath.Join(tmp, "data")
	user := "mysql"
	if !acct.set {
		user = ""
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=socket", "--skip-test-db"}
	if user != "" {
		args = append(args, "--user="+user)
	}
	install := acct.command("mariadb-install-db", args...)
	install.SysProcAttr.Credential = nil // it switches user itself
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w: %s", err, out)
	}
	s := &MariaDB{Host: "127.0.0.1", Dir: tmp, LogPath: filepath.Join(tmp, "build.log"), Socket: filepath.Join(tmp, "my.sock"), server: server{acct: acct}}
	if s.Port, err = testproc.FreePort(); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Kill()
	db, err := sql.Open("mysql", s.rootDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stmts := append([]string{
		"CREATE DATABASE " + MyDatabase,
		"CREATE USER " + MyAdmin + "@'%' IDENTIFIED BY '" + admin + "'",
	}, MyAdminGrants...)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, "SHUTDOWN"); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-s.proc.Done()
	return publishTemplate(tmp, final, "build.log", "my.sock")
}

// StartMariaDB starts a server from a copy of the template and kills it
// when the test ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	tm := myTemplateDir()
	if tm.unavailableAt != "" {
		unavailable(t, tm.unavailableAt)
		return nil
	}
	if tm.err != nil {
		t.Fatal(tm.err)
	}
	acct, dir := serverDir(t, "mysql", "rekey-my-*", tm.dir)
	s := &MariaDB{Host: "127.0.0.1", Dir: dir, LogPath: filepath.Join(dir, "mariadb.log"), Socket: filepath.Join(dir, "my.sock"), AdminPassword: tm.admin, server: server{acct: acct}}
	var err error
	if s.Port, err = testproc.FreePort(); err != nil {
		t.Fatal(err)
	}
	startForTest(t, "mariadb", s.LogPath, 30, s, s.Start)
	return s
}

func (s *MariaDB) rootDSN() string {
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr = "root", "unix", s.Socket
	if !s.acct.set {
		c.User = os.Getenv("USER")
	}
	return c.FormatDSN()
}

// Start starts the server and waits until root can log in.
func (s *MariaDB) Start() error {
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if err := s.acct.chown(s.LogPath); err != nil {
		return err
	}
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(s.Dir, "data"), "--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(s.Port), "--socket=" + s.Socket, "--skip-name-resolve", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=off",
		"--pid-file=" + filepath.Join(s.Dir, "mariadb.pid"), "--log-error=" + s.LogPath}
	if s.acct.set {
		args = append(args, "--user=mysql")
	}
	cmd := s.acct.command(mariadbd(), args...)
	cmd.SysProcAttr.Credential = nil // mariadbd drops to --user itself
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := testproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting mariadbd: %w", err)
	}
	s.setProc(p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return waitAnswer(ctx, "mariadb", s.LogPath, p, 50*time.Millisecond, func(ctx context.Context) error {
		db, err := sql.Open("mysql", s.rootDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	})
}

// Config returns a driver configuration for user over TCP.
func (s *MariaDB) Config(user, password string) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", fmt.Sprintf("%s:%d", s.Host, s.Port), MyDatabase
	c.Timeout = 10 * time.Second
	return c
}

// Login opens a new connection as user and runs SELECT 1.
func (s *MariaDB) Login(ctx context.Context, user, password string) error {
	conn, err := mysql.NewConnector(s.Config(user, password))
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Root opens a root connection through the socket, closed when the test
// ends.
func (s *MariaDB) Root(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.rootDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Exec runs statements as root.
func (s *MariaDB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	db := s.Root(t)
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
