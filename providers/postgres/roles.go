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
	"github.com/jackc/pgx/v5/pgtype"
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
// "rekey policy=P generation=7 rotation=ID created=RFC3339 state=active",
// with "expires=RFC3339" when rekey set the role's VALID UNTIL (key_ttl).
type meta struct {
	managed  bool
	policy   string
	gen      int64
	rotation string
	created  time.Time
	state    string
	expires  time.Time
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
		case "expires":
			m.expires, _ = time.Parse(time.RFC3339, v)
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
	out := fmt.Sprintf("rekey policy=%s generation=%d rotation=%s created=%s state=%s",
		clean(m.policy), m.gen, clean(m.rotation), m.created.UTC().Format(time.RFC3339), m.state)
	if !m.expires.IsZero() {
		out += " expires=" + m.expires.UTC().Format(time.RFC3339)
	}
	return out
}

type role struct {
	name                          string
	exists                        bool
	canLogin, super, repl, bypass bool
	inherit, createDB             bool
	connLimit                     int
	// validUntil is the role's VALID UNTIL (its password stops working
	// then); zero when it has none or 'infinity'.
	validUntil time.Time
	meta       meta
}

// rekeyExpiry reports whether the role's VALID UNTIL is the one rekey set
// for a key_ttl (and not one an administrator chose).
func (r role) rekeyExpiry() bool {
	return !r.validUntil.IsZero() && r.validUntil.Equal(r.meta.expires)
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
		COALESCE(shobj_description(oid, 'pg_authid'), ''), rolvaliduntil FROM pg_roles WHERE rolname = ANY($1)`, names)
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
		var until pgtype.Timestamptz
		if err := rows.Scan(&r.name, &r.canLogin, &r.super, &r.repl, &r.bypass, &r.inherit, &r.createDB, &r.connLimit, &comment, &until); err != nil {
			rows.Close()
			return nil, err
		}
		r.exists = true
		if until.Valid && until.InfinityModifier == pgtype.Finite {
			r.validUntil = until.Time.UTC()
		}
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

// validUntil returns the VALID UNTIL clause for a role given a new
// password at now, and when that password expires (zero: never).
//   - With a key_ttl, the password expires key_ttl after now.
//   - Otherwise a VALID UNTIL rekey set for an earlier key_ttl is cleared
//     ('infinity'), and one an administrator chose on from (the role
//     itself, or the active role an alternating standby is cloned from) is
//     kept; a new password on a role whose VALID UNTIL has passed would
//     not work, so that is refused.
func validUntil(from role, now time.Time, ttl time.Duration) (clause string, expires time.Time, err error) {
	if ttl > 0 {
		expires = now.Add(ttl).UTC().Truncate(time.Second)
		return " VALID UNTIL " + literal(expires.Format(time.RFC3339)), expires, nil
	}
	if from.validUntil.IsZero() || from.rekeyExpiry() {
		return " VALID UNTIL 'infinity'", time.Time{}, nil
	}
	if !from.validUntil.After(now) {
		return "", time.Time{}, plugin.Permanent(fmt.Errorf("role %s has VALID UNTIL %s, which has passed: a new password would not work; set key_ttl, or run ALTER ROLE %s VALID UNTIL 'infinity'",
			from.name, from.validUntil.Format(time.RFC3339), ident(from.name)))
	}
	return " VALID UNTIL " + literal(from.validUntil.Format(time.RFC3339Nano)), from.validUntil, nil
}

// AcceptsKeyTTL implements providers.KeyTTLTaker: a policy's key_ttl
// becomes the new password's VALID UNTIL.
func (b *base) AcceptsKeyTTL() bool { return true }
