//go:build unix

package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/dbtest"
)

// credKey is a credential at the server: its key id, whether it works, and
// the rotation id rekey tagged it with (if the kind can tag).
type credKey struct {
	id       string
	rotation string
}

// crashMatrix runs the crash matrix of one kind: for each failpoint a
// fresh credential, a rotation that panics there (after a forced rollback
// for the rollback failpoints), a new engine that reconciles and rotates
// to completion. creds lists the credentials that work at the server;
// check asserts after the crash (lenient: a credential made by the
// interrupted rotation may be known only by its tag or its creation after
// the intent), after reconciling and at the end (strict: only keys the
// journal knows work, and at the end exactly the current one), and that
// the dependent was never refused.
func crashMatrix(t *testing.T, setup func(t *testing.T, h *harness, name string) (*dbDependent, func() []credKey, string)) {
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			d, creds, seedID := setup(t, h, "c_"+strings.NewReplacer(".", "_").Replace(fp))
			_, d.failUnless, _ = d.served()
			rollbackFirst := strings.HasPrefix(fp, "rollback.")
			d.fail.Store(rollbackFirst)
			d.run()
			check := func(when string, st rotator.PolicyState, strict bool) {
				t.Helper()
				known := map[string]bool{seedID: true, st.CurrentKeyID: true}
				for _, id := range st.Retired {
					known[id] = true
				}
				if a := st.Active; a != nil {
					known[a.NewKeyID] = true
					for _, id := range a.OldKeyIDs {
						known[id] = true
					}
				}
				cs := creds()
				if len(cs) == 0 || len(cs) > 2 {
					t.Errorf("%s: %d working credentials, want 1 or 2", when, len(cs))
				}
				for _, c := range cs {
					if known[c.id] {
						continue
					}
					if strict || st.Active == nil || (c.rotation != "" && c.rotation != st.Active.ID) {
						t.Errorf("%s: credential %s works but the journal does not know it (an orphan)", when, c.id)
					}
				}
				if _, _, err := d.served(); err != nil {
					t.Errorf("%s: reading the sink: %v", when, err)
				} else if err := d.once(h.ctx); err != nil {
					t.Errorf("%s: the credential the sink serves does not log in: %v", when, err)
				}
			}
			crashed, first := func() (crashed any, out rotator.Outcome) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() { crashed = recover() }()
				return nil, h.rotate(p, "db")
			}()
			switch {
			case crashed == nil:
				t.Fatalf("failpoint %s was never reached: the rotation ended %s at %s (%v)", fp, first.Result, first.Step, first.Err)
			case crashed != "failpoint "+fp:
				t.Fatalf("the engine panicked with %v, not at the failpoint", crashed)
			}
			d.fail.Store(false)
			p := h.start(nil)
			before := h.state(p, "db")
			check("after the crash", before, false)
			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			st := h.state(p, "db")
			if st.Active != nil && !st.Active.Committed() {
				t.Fatalf("after reconciling, a rotation is still half-way before commit: step %s", st.Active.Step)
			}
			check("after reconciling", st, true)
			out := h.rotate(p, "db")
			if out.Result != "done" {
				t.Fatalf("rotation after recovery: %s at %s (%v)", out.Result, out.Step, out.Err)
			}
			st = h.state(p, "db")
			check("at the end", st, true)
			if cs := creds(); len(cs) != 1 || cs[0].id != st.CurrentKeyID {
				t.Errorf("at the end the working credentials are %v, want only the current key %s", cs, st.CurrentKeyID)
			}
			d.check(t)
		})
	}
}

// TestRedisCrashAtEveryFailpoint is the crash matrix for a Redis ACL
// user's passwords, with the dependent running: 0 refused logins, no
// password the journal does not know.
func TestRedisCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	s := dbtest.StartRedis(t)
	root := s.Client(t, "default", s.DefaultPassword)
	crashMatrix(t, func(t *testing.T, h *harness, name string) (*dbDependent, func() []credKey, string) {
		h.secret("the redis admin password", s.AdminPassword)
		h.secret("the redis default password", s.DefaultPassword)
		seed := "seed-" + dbtest.RandomHex(12)
		h.secret("the seed password", seed)
		if err := root.Do(h.ctx, "ACL", "SETUSER", name, "on", ">"+seed, "~app:*", "+get", "+ping").Err(); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(seed))
		seedID := name + "@" + hex.EncodeToString(sum[:])[:16]
		d := newDBDependent(h, seedFile(h, name+".json", name, seed, s.Host, s.Port), func(ctx context.Context, user, pw string) error {
			c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: pw, MaxRetries: -1, PoolSize: 1, DisableIdentity: true, Protocol: 2})
			defer c.Close()
			if err := c.Get(ctx, "app:x").Err(); err != nil && err != redis.Nil {
				return err
			}
			return nil
		}, func(err error) bool {
			return strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "NOPERM")
		})
		provider := fmt.Sprintf("  provider \"redis\" {\n    host     = %q\n    port     = %d\n    username = %q\n    admin {\n      username      = %q\n      password_file = %q\n    }\n  }\n",
			s.Host, s.Port, name, dbtest.RedisAdmin, h.writeFile("redis-admin.pw", s.AdminPassword))
		timeout := "10s"
		if strings.HasPrefix(name, "c_rollback") {
			timeout = "500ms"
		}
		h.src = dbPolicyTimeout(h, d, provider, "  probe \"redis\" {\n    interval = \"100ms\"\n  }", timeout)
		creds := func() []credKey {
			res, err := root.Do(h.ctx, "ACL", "GETUSER", name).Result()
			if err != nil {
				t.Fatal(err)
			}
			meta, err := root.HGetAll(h.ctx, "rekey:acl:"+name).Result()
			if err != nil {
				t.Fatal(err)
			}
			var out []credKey
			var list []any
			switch v := res.(type) {
			case map[any]any:
				list, _ = v["passwords"].([]any)
			case []any:
				for i := 0; i+1 < len(v); i += 2 {
					if v[i] == "passwords" {
						list, _ = v[i+1].([]any)
					}
				}
			}
			{
				for _, x := range list {
					hash, _ := x.(string)
					rot := ""
					for _, f := range strings.Fields(meta[hash]) {
						if v, ok := strings.CutPrefix(f, "rotation="); ok {
							rot = v
						}
					}
					out = append(out, credKey{id: name + "@" + hash[:16], rotation: rot})
				}
			}
			return out
		}
		return d, creds, seedID
	})
}

// TestMariaDBCrashAtEveryFailpoint is the crash matrix for alternating
// MariaDB accounts, with the dependent running: 0 refused logins, no
// unlocked account the journal does not know.
func TestMariaDBCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	s := dbtest.StartMariaDB(t)
	root := s.Root(t)
	s.Exec(t, "CREATE TABLE app.items (id int)", "CREATE ROLE app_rw", "GRANT SELECT ON app.items TO app_rw", "GRANT app_rw TO rekey_admin@'%' WITH ADMIN OPTION")
	crashMatrix(t, func(t *testing.T, h *harness, name string) (*dbDependent, func() []credKey, string) {
		h.secret("the mariadb admin password", s.AdminPassword)
		seed := "seed-" + dbtest.RandomHex(12)
		h.secret("the seed password", seed)
		a, b := name[:min(len(name), 28)]+"_a", name[:min(len(name), 28)]+"_b"
		for _, q := range []string{
			"CREATE USER " + a + "@'%' IDENTIFIED BY '" + seed + "'", "GRANT app_rw TO " + a + "@'%'", "SET DEFAULT ROLE app_rw FOR " + a + "@'%'",
		} {
			if _, err := root.ExecContext(h.ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		fp := func(user string) (string, bool) {
			var auth string
			var locked sql.NullBool
			err := root.QueryRowContext(h.ctx, "SELECT JSON_VALUE(Priv, '$.authentication_string'), JSON_EXTRACT(Priv, '$.account_locked') IN ('true', '1') FROM mysql.global_priv WHERE User = ? AND Host = '%'", user).Scan(&auth, &locked)
			if errors.Is(err, sql.ErrNoRows) {
				return "", false
			}
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(auth))
			return user + "@" + hex.EncodeToString(sum[:8]), !locked.Bool
		}
		seedID, _ := fp(a)
		d := newDBDependent(h, seedFile(h, name+".json", a, seed, s.Host, s.Port), func(ctx context.Context, user, pw string) error {
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
		provider := fmt.Sprintf("  provider \"mysql\" {\n    host      = %q\n    port      = %d\n    dbname    = %q\n    tls       = \"false\"\n    usernames = [%q, %q]\n    admin {\n      username      = %q\n      password_file = %q\n    }\n  }\n",
			s.Host, s.Port, dbtest.MyDatabase, a, b, dbtest.MyAdmin, h.writeFile("my-admin.pw", s.AdminPassword))
		timeout := "10s"
		if strings.HasPrefix(name, "c_rollback") {
			timeout = "500ms"
		}
		h.src = dbPolicyTimeout(h, d, provider, "  probe \"mysql\" {\n    tls      = \"false\"\n    interval = \"100ms\"\n  }", timeout)
		creds := func() []credKey {
			var out []credKey
			for _, u := range []string{a, b} {
				if id, ok := fp(u); ok {
					out = append(out, credKey{id: id})
				}
			}
			return out
		}
		return d, creds, seedID
	})
}
