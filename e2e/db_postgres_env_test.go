//go:build unix

package e2e

import (
	"context"
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/dbtest"
)

// pgWorld is one PostgreSQL policy under test: a pair of roles (or one),
// the group role and table they use, the JSON file the file sink serves,
// and a dependent application that opens a new connection every few
// milliseconds with whatever the file holds.
type pgWorld struct {
	h        *harness
	pg       *dbtest.Postgres
	roles    []string
	sinkPath string
	adminPW  string
	// adminBlock, when set, replaces the admin block (the password file).
	adminBlock string
	dep        *pgDependent
}

// newPGWorld creates the roles (the first one active with a seed
// password), the group role app_rw with a table, and the sink file with
// the seed credential.
func newPGWorld(h *harness, pg *dbtest.Postgres, prefix string, alternating bool) *pgWorld {
	t := h.t
	t.Helper()
	w := &pgWorld{h: h, pg: pg, roles: []string{prefix + "_a"}}
	if alternating {
		w.roles = append(w.roles, prefix+"_b")
	}
	seed := "seed-" + dbtest.RandomHex(12)
	h.secret("the seed password of "+w.roles[0], seed)
	h.secret("the admin password", pg.AdminPassword)
	h.secret("the superuser password", pg.SuperPassword)
	group := pgx.Identifier{prefix + "_rw"}.Sanitize()
	table := pgx.Identifier{prefix + "_items"}.Sanitize()
	active := pgx.Identifier{w.roles[0]}.Sanitize()
	pg.Exec(t,
		"CREATE ROLE "+group+" NOLOGIN",
		"CREATE TABLE "+table+" (id int)",
		"GRANT SELECT, INSERT ON "+table+" TO "+group,
		"CREATE ROLE "+active+" LOGIN PASSWORD '"+seed+"'",
		"GRANT "+group+" TO "+active,
	)
	w.sinkPath = h.writeFile(prefix+"-db.json", w.valueJSON(w.roles[0], seed))
	w.adminPW = h.writeFile(prefix+"-admin.pw", pg.AdminPassword+"\n")
	w.dep = newPGDependent(w, "SELECT count(*) FROM "+table)
	return w
}

func (w *pgWorld) valueJSON(user, pw string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw, "host": w.pg.Host, "port": fmt.Sprint(w.pg.Port), "dbname": dbtest.PGDatabase})
	return string(b) + "\n"
}

// provider is the provider block for the world's roles.
func (w *pgWorld) provider(host string, port int, extra string) string {
	names := `username = "` + w.roles[0] + `"`
	if len(w.roles) == 2 {
		names = fmt.Sprintf("usernames = [%q, %q]", w.roles[0], w.roles[1])
	}
	admin := w.adminBlock
	if admin == "" {
		admin = fmt.Sprintf("admin {\n      username      = %q\n      password_file = %q\n    }", dbtest.PGAdmin, w.adminPW)
	}
	return fmt.Sprintf(`  provider "postgres" {
    host    = %q
    port    = %d
    dbname  = %q
    sslmode = "disable"
    %s
    %s
    %s
  }
`, host, port, dbtest.PGDatabase, names, extra, admin)
}

// policy is a whole policy: the provider, the file sink, the login probe,
// a reload hook that tells the dependent, and the dependent's health as a
// dependent probe.
func (w *pgWorld) policy(name, providerBlock, depTimeout, revoke string) string {
	return fmt.Sprintf(`
policy %q {
  every        = "7d"
  step_timeout = "10s"

%s
  sink "file" {
    path   = %q
    format = "json"
  }

  probe "postgres" {
    sslmode  = "disable"
    timeout  = "20s"
    interval = "100ms"
  }

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
%s
  }
}
`, name, providerBlock, w.sinkPath, w.h.exe(), helperEnv, w.dep.srv.URL+"/reload", w.dep.srv.URL+"/healthz", depTimeout, revoke)
}

// exe is the test binary, which posts to a URL when run with helperEnv.
func (h *harness) exe() string {
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	return exe
}

// served reads the sink file as the dependent does.
func (w *pgWorld) served() (user, pw string, err error) {
	b, err := os.ReadFile(w.sinkPath)
	if err != nil {
		return "", "", err
	}
	var v map[string]string
	if err := json.Unmarshal(b, &v); err != nil {
		return "", "", err
	}
	w.h.secret("a password served by the file sink", v["password"])
	return v["username"], v["password"], nil
}

// pgRole is a role's state as the superuser sees it.
type pgRole struct {
	exists, canLogin bool
	comment          string
}

func (w *pgWorld) role(name string) pgRole {
	w.h.t.Helper()
	var r pgRole
	err := w.pg.Super(w.h.t).QueryRow(w.h.ctx, `SELECT rolcanlogin, COALESCE(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1`, name).Scan(&r.canLogin, &r.comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return r
	}
	if err != nil {
		w.h.t.Fatalf("reading role %s: %v", name, err)
	}
	r.exists = true
	return r
}

// keyOf returns the key id a login role holds, from rekey's comment.
func keyOf(name string, r pgRole) (id, rotation string) {
	gen := "0"
	for _, f := range strings.Fields(r.comment) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "generation":
			gen = v
		case "rotation":
			rotation = v
		}
	}
	return name + "@" + gen, rotation
}

// check asserts the invariants at a checkpoint: every role that can log
// in holds a key the journal knows (or, unless strict, one tagged with the
// rotation in flight, which rekey finds and locks), at most two can, the
// credential the sink serves logs in, and the dependent never failed to
// log in.
func (w *pgWorld) check(when string, st rotator.PolicyState, strict bool) {
	t := w.h.t
	t.Helper()
	known := map[string]bool{w.roles[0] + "@0": true, st.CurrentKeyID: true}
	for _, id := range st.Retired {
		known[id] = true
	}
	if a := st.Active; a != nil {
		known[a.NewKeyID] = true
		for _, id := range a.OldKeyIDs {
			known[id] = true
		}
	}
	logins := 0
	for _, n := range w.roles {
		r := w.role(n)
		if !r.canLogin {
			continue
		}
		logins++
		id, rot := keyOf(n, r)
		if known[id] {
			continue
		}
		if strict || st.Active == nil || rot != st.Active.ID {
			t.Errorf("%s: role %s can log in with key %s, which the journal does not know (an orphan)", when, n, id)
		}
	}
	if logins == 0 {
		t.Errorf("%s: no role can log in", when)
	}
	user, pw, err := w.served()
	if err == nil {
		err = w.pg.Login(w.h.ctx, user, pw)
	}
	if err != nil {
		t.Errorf("%s: the credential the sink serves does not log in: %v", when, err)
	}
	if n, first := w.dep.authFailures(); n > 0 {
		t.Errorf("%s: the dependent failed to log in %d times (first: %s)", when, n, first)
	}
}

// final asserts the end state: exactly one role can log in, it is the
// journal's current key, and the sink serves it.
func (w *pgWorld) final(st rotator.PolicyState) {
	t := w.h.t
	t.Helper()
	w.check("at the end", st, true)
	var login []string
	for _, n := range w.roles {
		if r := w.role(n); r.canLogin {
			id, _ := keyOf(n, r)
			login = append(login, id)
		} else if !r.exists {
			t.Errorf("role %s was dropped", n)
		}
	}
	if len(login) != 1 || login[0] != st.CurrentKeyID {
		t.Errorf("at the end the roles that can log in are %v, want only the current key %s", login, st.CurrentKeyID)
	}
	if user, _, err := w.served(); err != nil || user+"@" != st.CurrentKeyID[:len(user)+1] {
		t.Errorf("the sink serves %s (%v), not the current key %s", user, err, st.CurrentKeyID)
	}
}

// pgDependent is the application: a loop that, every few milliseconds,
// reads the sink file and opens a new connection with it, and counts
// failed logins. Its /healthz answers whether a login with what the file
// holds now works (or fails on demand, to force a rollback).
type pgDependent struct {
	w     *pgWorld
	query string
	srv   *httptest.Server
	// fail makes /healthz fail while the sink serves a password other
	// than failUnless (the application breaks with the new key).
	fail       atomic.Bool
	failUnless string

	attempts, ok, reloads atomic.Int64
	mu                    sync.Mutex
	authFails             []string
	otherFails            []string

	cancel context.CancelFunc
	done   chan struct{}
}

func newPGDependent(w *pgWorld, query string) *pgDependent {
	d := &pgDependent{w: w, query: query}
	d.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reload" {
			d.reloads.Add(1)
			return
		}
		if d.fail.Load() {
			if _, pw, err := d.w.served(); err != nil || pw != d.failUnless {
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
	w.h.t.Cleanup(d.srv.Close)
	return d
}

// once reads the file and logs in with a new connection.
func (d *pgDependent) once(ctx context.Context) error {
	user, pw, err := d.w.served()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, d.w.pg.Config(user, pw))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, d.query)
	return err
}

// run starts the loop; it stops at stop or when the test ends.
func (d *pgDependent) run() {
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
				var pe *pgconn.PgError
				d.mu.Lock()
				if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000" || pe.Code == "42501") {
					d.authFails = append(d.authFails, err.Error())
				} else {
					d.otherFails = append(d.otherFails, err.Error())
				}
				d.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	d.w.h.t.Cleanup(d.stop)
}

func (d *pgDependent) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

// authFailures counts refused logins (a wrong password, a locked role, a
// missing privilege) and returns the first.
func (d *pgDependent) authFailures() (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.authFails) == 0 {
		return 0, ""
	}
	return len(d.authFails), d.authFails[0]
}

// otherFailures counts failures that were not refusals (the server down).
func (d *pgDependent) otherFailures() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.otherFails)
}

// summary logs the dependent's counts and checks it did work.
func (d *pgDependent) summary(t testing.TB) {
	t.Helper()
	n, _ := d.authFailures()
	t.Logf("dependent: %d logins attempted, %d succeeded, %d refused, %d other failures, %d reloads", d.attempts.Load(), d.ok.Load(), n, d.otherFailures(), d.reloads.Load())
	if d.reloads.Load() == 0 {
		t.Error("the reload hook never reached the dependent")
	}
	if d.ok.Load() < 20 {
		t.Errorf("the dependent logged in only %d times: the test did not exercise it", d.ok.Load())
	}
}
