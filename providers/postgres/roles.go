package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/dbadmin"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// Key states kept in a role's comment.
const (
	stateActive   = "active"
	stateInactive = "inactive"
	stateRevoked  = "revoked"
)

// meta is rekey's bookkeeping in a role's comment:
// "rekey policy=P generation=7 rotation=ID created=RFC3339 state=active".
type meta struct {
	managed  bool
	policy   string
	gen      int64
	rotation string
	created  time.Time
	state    string
}

func parseMeta(comment string) meta {
	if !strings.HasPrefix(comment, "rekey ") {
		return meta{}
	}
	m := meta{managed: true}
	for _, f := range strings.Fields(comment[len("rekey "):]) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "policy":
			m.policy = v
		case "generation":
			m.gen, _ = strconv.ParseInt(v, 10, 64)
		case "rotation":
			m.rotation = v
		case "created":
			m.created, _ = time.Parse(time.RFC3339, v)
		case "state":
			m.state = v
		}
	}
	return m
}

func (m meta) String() string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\'' || r == '\\' || r <= ' ' || r == '=' {
				return '_'
			}
			return r
		}, s)
	}
	return fmt.Sprintf("rekey policy=%s generation=%d rotation=%s created=%s state=%s",
		clean(m.policy), m.gen, clean(m.rotation), m.created.UTC().Format(time.RFC3339), m.state)
}

type role struct {
	name                          string
	exists                        bool
	canLogin, super, repl, bypass bool
	inherit, createDB             bool
	connLimit                     int
	meta                          meta
}

// gen is the generation of the role's current password: the journaled one,
// or 0 for a password set before rekey managed the role.
func (r role) gen() int64 { return r.meta.gen }

// holds reports whether the role's current password is generation gen.
func (r role) holds(gen int64) bool {
	return r.exists && r.meta.state != stateRevoked && r.gen() == gen
}

func readRoles(ctx context.Context, c *pgx.Conn, names ...string) (map[string]role, error) {
	rows, err := c.Query(ctx, `SELECT rolname, rolcanlogin, rolsuper, rolreplication, rolbypassrls, rolinherit, rolcreatedb, rolconnlimit,
		COALESCE(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	out := map[string]role{}
	for _, n := range names {
		out[n] = role{name: n}
	}
	for rows.Next() {
		var r role
		var comment string
		if err := rows.Scan(&r.name, &r.canLogin, &r.super, &r.repl, &r.bypass, &r.inherit, &r.createDB, &r.connLimit, &comment); err != nil {
			rows.Close()
			return nil, err
		}
		r.exists = true
		r.meta = parseMeta(comment)
		out[r.name] = r
	}
	return out, rows.Err()
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes a string that holds no backslash as a standard SQL string
// literal (utility statements such as COMMENT take no parameters).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// inTx runs fn in a transaction.
func inTx(ctx context.Context, c *pgx.Conn, fn func(tx pgx.Tx) error) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

func setMeta(ctx context.Context, tx pgx.Tx, name string, m meta) error {
	_, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident(name)+" IS "+literal(m.String()))
	return err
}

// newPassword returns a new password and its SCRAM verifier.
func (b *base) newPassword() (secret.Value, string, error) {
	pw, err := dbadmin.NewPassword(b.pwLen)
	if err != nil {
		return secret.Value{}, "", err
	}
	v, err := scramVerifier(pw.Reveal())
	if err != nil {
		return secret.Value{}, "", err
	}
	return pw, v, nil
}

// classify marks errors that retrying cannot fix as permanent and says
// what to do about the common ones.
func (b *base) classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "28P01", "28000":
		return plugin.Permanent(fmt.Errorf("%w (the admin credential was refused: check admin.username %q and %s)", err, b.admin.Username, b.admin.Source()))
	case "42501":
		return plugin.Permanent(fmt.Errorf("%w (the admin role lacks a privilege: it needs CREATEROLE, and pg_signal_backend for terminate_sessions_after; see the README)", err))
	case "3D000", "42704", "0LP01", "0L000", "42939", "22023", "42601":
		return plugin.Permanent(err)
	}
	return err
}

// terminate ends the sessions of role that started before `before` (all
// of them when before is zero) and reports how many remain.
func (b *base) terminate(ctx context.Context, c *pgx.Conn, name string, before time.Time) (int, error) {
	q := `SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`
	args := []any{name}
	if !before.IsZero() {
		q += ` AND backend_start < $2`
		args = append(args, before)
	}
	var left int
	if err := c.QueryRow(ctx, q, args...).Scan(&left); err != nil {
		return 0, b.classify(fmt.Errorf("ending the sessions of role %s: %w", name, err))
	}
	zerolog.Ctx(ctx).Info().Str("role", name).Msg("postgres: ended the sessions of the old credential")
	return left, nil
}

// sessions counts the sessions of role that started before `before`
// (all when zero).
func sessions(ctx context.Context, c *pgx.Conn, name string, before time.Time) (int, error) {
	q := `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`
	args := []any{name}
	if !before.IsZero() {
		q += ` AND backend_start < $2`
		args = append(args, before)
	}
	var n int
	err := c.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}
