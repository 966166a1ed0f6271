//go:build unix

package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/testenv/dbtest"
)

// dbDependent is an application that, every few milliseconds, reads the
// sink file and logs in over a new connection with it, counting refused
// logins; /healthz answers whether a login with what the file holds now
// works, /reload counts reloads.
type dbDependent struct {
	h        *harness
	sinkPath string
	login    func(ctx context.Context, user, pw string) error
	refused  func(error) bool
	srv      *httptest.Server
	// fail makes /healthz fail while the sink serves another password
	// than failUnless (the dependent cannot use the new key), to force a
	// rollback; with the previous value restored it passes again.
	fail       atomic.Bool
	failUnless string

	attempts, ok, reloads atomic.Int64
	mu                    sync.Mutex
	refusals, others      []string
	cancel                context.CancelFunc
	done                  chan struct{}
}

func newDBDependent(h *harness, sinkPath string, login func(ctx context.Context, user, pw string) error, refused func(error) bool) *dbDependent {
	d := &dbDependent{h: h, sinkPath: sinkPath, login: login, refused: refused}
	d.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reload" {
			d.reloads.Add(1)
			return
		}
		if d.fail.Load() {
			if _, pw, err := d.served(); err != nil || pw != d.failUnless {
				http.Error(rw, "failing on purpose", http.StatusServiceUnavailable)
				return
			}
		}
		if err := d.once(r.Context()); err != nil {
			http.Error(rw, "cannot log in", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok\n"))
	}))
	h.t.Cleanup(d.srv.Close)
	return d
}

func (d *dbDependent) served() (string, string, error) {
	b, err := os.ReadFile(d.sinkPath)
	if err != nil {
		return "", "", err
	}
	var v map[string]string
	if err := json.Unmarshal(b, &v); err != nil {
		return "", "", err
	}
	d.h.secret("a password served by the file sink", v["password"])
	return v["username"], v["password"], nil
}

func (d *dbDependent) once(ctx context.Context) error {
	user, pw, err := d.served()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.login(ctx, user, pw)
}

func (d *dbDependent) run() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		for ctx.Err() == nil {
			d.attempts.Add(1)
			err := d.once(ctx)
			switch {
			case err == nil:
				d.ok.Add(1)
			case ctx.Err() != nil:
			default:
				d.mu.Lock()
				if d.refused(err) {
					d.refusals = append(d.refusals, err.Error())
				} else {
					d.others = append(d.others, err.Error())
				}
				d.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	d.h.t.Cleanup(d.stop)
}

func (d *dbDependent) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

// check stops the loop and asserts it was never refused and did work.
func (d *dbDependent) check(t testing.TB) {
	t.Helper()
	d.stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	t.Logf("dependent: %d logins attempted, %d succeeded, %d refused, %d other failures, %d reloads", d.attempts.Load(), d.ok.Load(), len(d.refusals), len(d.others), d.reloads.Load())
	if len(d.refusals) > 0 {
		t.Errorf("the dependent was refused %d times (first: %s)", len(d.refusals), d.refusals[0])
	}
	if d.ok.Load() < 20 || d.reloads.Load() == 0 {
		t.Errorf("the dependent logged in %d times and was reloaded %d times: the test did not exercise it", d.ok.Load(), d.reloads.Load())
	}
}

// dbPolicy is a policy around a provider block: the file sink, a login
// probe of the same kind, a reload hook and the dependent's health.
func dbPolicy(h *harness, d *dbDependent, provider, probe string) string {
	return dbPolicyTimeout(h, d, provider, probe, "10s")
}

func dbPolicyTimeout(h *harness, d *dbDependent, provider, probe, depTimeout string) string {
	return fmt.Sprintf(`state_dir = "state"

policy "db" {
  every        = "7d"
  step_timeout = "10s"

%s
  sink "file" {
    path   = %q
    format = "json"
  }

%s

  reload "exec" {
    command = [%q]
    env     = { %s = %q }
  }

  probe "http" {
    target   = "dependent"
    url      = %q
    timeout  = %q
    interval = "50ms"
  }

  revoke {
    after       = "1s"
    soak        = "300ms"
  }
}
`, provider, d.sinkPath, probe, h.exe(), helperEnv, d.srv.URL+"/reload", d.srv.URL+"/healthz", depTimeout)
}

func seedFile(h *harness, name, user, pw, host string, port int) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw, "host": host, "port": fmt.Sprint(port)})
	return h.writeFile(name, string(b)+"\n")
}

// TestRedisRotationWithDependent rotates a Redis ACL user's password three
// times while the dependent logs in every few milliseconds with what the
// file sink serves: never refused, and at the end the user holds exactly
// the current password.
func TestRedisRotationWithDependent(t *testing.T) {
	t.Parallel()
	s := dbtest.StartRedis(t)
	h := newHarness(t)
	h.secret("the redis admin password", s.AdminPassword)
	h.secret("the redis default password", s.DefaultPassword)
	seed := "seed-" + dbtest.RandomHex(12)
	h.secret("the seed password", seed)
	if err := s.Client(t, "default", s.DefaultPassword).Do(h.ctx, "ACL", "SETUSER", "cache_app", "on", ">"+seed, "~app:*", "+get", "+set", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	sink := seedFile(h, "redis.json", "cache_app", seed, s.Host, s.Port)
	d := newDBDependent(h, sink, func(ctx context.Context, user, pw string) error {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: pw, MaxRetries: -1, PoolSize: 1, DisableIdentity: true, Protocol: 2})
		defer c.Close()
		return c.Get(ctx, "app:x").Err()
	}, func(err error) bool {
		return err != nil && err != redis.Nil && (strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "NOPERM"))
	})
	// A missing key is a successful login.
	login := d.login
	d.login = func(ctx context.Context, user, pw string) error {
		if err := login(ctx, user, pw); err != nil && err != redis.Nil {
			return err
		}
		return nil
	}
	provider := fmt.Sprintf(`  provider "redis" {
    host     = %q
    port     = %d
    username = "cache_app"
    admin {
      username      = %q
      password_file = %q
    }
  }
`, s.Host, s.Port, dbtest.RedisAdmin, h.writeFile("redis-admin.pw", s.AdminPassword))
	h.src = dbPolicy(h, d, provider, `  probe "redis" {
    query = ["GET", "app:config"]
  }`)
	d.run()
	p := h.start(nil)
	for i := 1; i <= 3; i++ {
		out := h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)", i, out.Result, out.Step, out.Err)
		}
		st := h.state(p, "db")
		user, pw, err := d.served()
		if err != nil || user != "cache_app" {
			t.Fatalf("the sink serves %s (%v)", user, err)
		}
		if err := s.Login(h.ctx, "cache_app", pw); err != nil {
			t.Fatalf("rotation %d: the served password does not log in: %v", i, err)
		}
		if err := s.Login(h.ctx, "cache_app", seed); err == nil {
			t.Fatalf("rotation %d: the seed password still logs in", i)
		}
		if !strings.HasPrefix(st.CurrentKeyID, "cache_app@") {
			t.Errorf("current key %s", st.CurrentKeyID)
		}
	}
	d.check(t)
}

// TestMariaDBRotationWithDependent rotates two alternating MariaDB
// accounts three times while the dependent logs in every few milliseconds
// with what the file sink serves and reads a table through a role: never
// refused; at the end exactly one account is unlocked and it is the
// current key.
func TestMariaDBRotationWithDependent(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	h := newHarness(t)
	h.secret("the mariadb admin password", s.AdminPassword)
	seed := "seed-" + dbtest.RandomHex(12)
	h.secret("the seed password", seed)
	s.Exec(t,
		"CREATE TABLE app.items (id int)", "CREATE ROLE app_rw", "GRANT SELECT ON app.items TO app_rw",
		"CREATE USER shop_a@'%' IDENTIFIED BY '"+seed+"'", "GRANT app_rw TO shop_a@'%'", "SET DEFAULT ROLE app_rw FOR shop_a@'%'",
		"GRANT app_rw TO rekey_admin@'%' WITH ADMIN OPTION",
	)
	sink := seedFile(h, "mysql.json", "shop_a", seed, s.Host, s.Port)
	d := newDBDependent(h, sink, func(ctx context.Context, user, pw string) error {
		conn, err := gomysql.NewConnector(s.Config(user, pw))
		if err != nil {
			return err
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		var n int
		return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n)
	}, func(err error) bool {
		var me *gomysql.MySQLError
		return errors.As(err, &me) && (me.Number == 1045 || me.Number == 4151 || me.Number == 1142 || me.Number == 1044)
	})
	provider := fmt.Sprintf(`  provider "mysql" {
    host      = %q
    port      = %d
    dbname    = %q
    tls       = "false"
    usernames = ["shop_a", "shop_b"]
    admin {
      username      = %q
      password_file = %q
    }
  }
`, s.Host, s.Port, dbtest.MyDatabase, dbtest.MyAdmin, h.writeFile("my-admin.pw", s.AdminPassword))
	h.src = dbPolicy(h, d, provider, `  probe "mysql" {
    tls   = "false"
    query = "SELECT COUNT(*) FROM items"
  }`)
	d.run()
	p := h.start(nil)
	for i := 1; i <= 3; i++ {
		out := h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)", i, out.Result, out.Step, out.Err)
		}
		st := h.state(p, "db")
		want := []string{"shop_b@", "shop_a@", "shop_b@"}[i-1]
		if !strings.HasPrefix(st.CurrentKeyID, want) {
			t.Errorf("rotation %d: current key %s, want %s...", i, st.CurrentKeyID, want)
		}
		user, pw, err := d.served()
		if err != nil || user+"@" != want {
			t.Fatalf("the sink serves %s (%v)", user, err)
		}
		if err := s.Login(h.ctx, user, pw); err != nil {
			t.Fatalf("the served password does not log in: %v", err)
		}
		var unlocked []string
		rows, err := s.Root(t).QueryContext(h.ctx, "SELECT User FROM mysql.global_priv WHERE User IN ('shop_a', 'shop_b') AND JSON_EXTRACT(Priv, '$.account_locked') IS NOT TRUE")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var u string
			_ = rows.Scan(&u)
			unlocked = append(unlocked, u)
		}
		rows.Close()
		if len(unlocked) != 1 || unlocked[0] != user {
			t.Errorf("rotation %d: unlocked accounts %v, want only %s", i, unlocked, user)
		}
	}
	d.check(t)
}
