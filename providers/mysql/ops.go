package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/dbadmin"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// setPassword gives the account a new password and reads back its key id.
func (b *base) setPassword(ctx context.Context, c *sql.Conn, mariadb bool, name, verb, extra string) (secret.Value, acct, error) {
	pw, err := dbadmin.NewPassword(b.pwLen)
	if err != nil {
		return secret.Value{}, acct{}, err
	}
	if _, err := c.ExecContext(ctx, verb+" USER "+b.account(name)+identified(mariadb, pw)+extra); err != nil {
		return secret.Value{}, acct{}, b.classify(fmt.Errorf("setting the password of %s: %w", name, err))
	}
	a, err := b.read(ctx, c, mariadb, name)
	return pw, a, err
}

// Create sets a new password on the account. The previous one stops
// working at once.
func (p *Single) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, done, err := p.open(ctx)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer done()
	mariadb, err := flavor(ctx, c)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), p.classify(err))
	}
	a, err := p.read(ctx, c, mariadb, p.user)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	if !a.exists {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: account %s@%s does not exist: create it or fix username and user_host", p.Target(), p.user, p.userHost))
	}
	if a.locked {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: account %s is locked: a new password would not work; unlock it or fix username", p.Target(), p.user))
	}
	pw, a, err := p.setPassword(ctx, c, mariadb, p.user, "ALTER", expireClause(rot.KeyTTL))
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", a.id()).Msg("mysql: set a new password (single account: the previous password no longer works)")
	return plugin.Key{ID: a.id(), Value: p.value(p.user, pw), CreatedAt: time.Unix(a.changed, 0).UTC(), ExpiresAt: a.expires()}, nil
}

// Delete of an older password changes nothing: it was replaced when the
// next one was set. Deleting the current one cannot bring back the
// previous password; the account keeps the new one and the error is
// logged.
func (p *Single) Delete(ctx context.Context, keyID string) error {
	_, ts, err := ParseKeyID(keyID)
	if err != nil {
		return err
	}
	c, done, err := p.open(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer done()
	mariadb, err := flavor(ctx, c)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), p.classify(err))
	}
	a, err := p.read(ctx, c, mariadb, p.user)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), err)
	}
	if a.exists && a.fp == ts {
		zerolog.Ctx(ctx).Error().Str("target", p.Target()).Str("key_id", keyID).
			Msg("mysql: single account: the previous password cannot be restored; the account keeps the password of this rotation, which no sink serves any more: rotate again (rekey rotate), or use strategy = \"alternating\"")
	}
	return nil
}

// List returns the account's one password.
func (p *Single) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	c, done, err := p.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer done()
	mariadb, err := flavor(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Target(), p.classify(err))
	}
	a, err := p.read(ctx, c, mariadb, p.user)
	if err != nil || !a.exists {
		return nil, err
	}
	st := plugin.KeyActive
	if a.locked {
		st = plugin.KeyInactive
	}
	return []plugin.KeyInfo{{ID: a.id(), Status: st, CreatedAt: time.Unix(a.changed, 0).UTC(), ExpiresAt: a.expires()}}, nil
}

func (p *Alternating) other(name string) string {
	if name == p.users[0] {
		return p.users[1]
	}
	return p.users[0]
}

func (p *Alternating) state(ctx context.Context) (*sql.Conn, func(), bool, map[string]acct, error) {
	c, done, err := p.open(ctx)
	if err != nil {
		return nil, nil, false, nil, fmt.Errorf("%s: %w", p.Target(), err)
	}
	mariadb, err := flavor(ctx, c)
	if err != nil {
		done()
		return nil, nil, false, nil, fmt.Errorf("%s: %w", p.Target(), p.classify(err))
	}
	as := map[string]acct{}
	for _, n := range p.users {
		a, err := p.read(ctx, c, mariadb, n)
		if err != nil {
			done()
			return nil, nil, false, nil, fmt.Errorf("%s: %w", p.Target(), err)
		}
		as[n] = a
	}
	return c, done, mariadb, as, nil
}

var grantee = regexp.MustCompile("(?i) (TO|FOR) `[^`]*`@`[^`]*`")

var identifiedClause = regexp.MustCompile(`(?i) IDENTIFIED (BY PASSWORD|VIA|WITH) .*?('[^']*')?( (REQUIRE|WITH) .*)?$`)

// cloneGrants copies the active account's grants, roles and default role
// to the standby, from SHOW GRANTS (password clauses removed).
func (p *Alternating) cloneGrants(ctx context.Context, c *sql.Conn, from, to string) error {
	rows, err := c.QueryContext(ctx, "SHOW GRANTS FOR "+p.account(from))
	if err != nil {
		return p.classify(fmt.Errorf("reading the grants of %s: %w", from, err))
	}
	var stmts []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		g = identifiedClause.ReplaceAllString(g, "$3")
		if strings.HasPrefix(strings.ToUpper(g), "GRANT USAGE ON *.* TO") && !strings.Contains(strings.ToUpper(g), "WITH") {
			continue
		}
		stmts = append(stmts, grantee.ReplaceAllString(g, " $1 "+ident(to)+"@"+ident(p.userHost)))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return p.classify(fmt.Errorf("copying a grant of %s to %s (the admin needs each privilege WITH GRANT OPTION, and each role WITH ADMIN OPTION): %w", from, to, err))
		}
	}
	return nil
}

// Create gives a new password to the standby account (created with the
// active account's grants if it does not exist; its grants brought in line
// otherwise) and unlocks it. The active account is not touched.
func (p *Alternating) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, done, mariadb, as, err := p.state(ctx)
	if err != nil {
		return plugin.Key{}, err
	}
	defer done()
	var login []acct
	for _, n := range p.users {
		if a := as[n]; a.exists && !a.locked {
			login = append(login, a)
		}
	}
	switch len(login) {
	case 0:
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: neither %s nor %s exists unlocked: the alternating strategy starts from the account applications use today (the first of usernames)", p.Target(), p.users[0], p.users[1]))
	case 2:
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%w: %s: both %s and %s are unlocked; rekey gives the new password to the account no application uses, so one must be locked: lock the unused one (ALTER USER ... ACCOUNT LOCK) and rotate again", plugin.ErrLimit, p.Target(), p.users[0], p.users[1]))
	}
	active, standby := login[0], as[p.other(login[0].name)]
	verb := "ALTER"
	if !standby.exists {
		verb = "CREATE"
	}
	pw, a, err := p.setPassword(ctx, c, mariadb, standby.name, verb, " ACCOUNT LOCK"+expireClause(rot.KeyTTL))
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	if err := p.cloneGrants(ctx, c, active.name, standby.name); err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	if _, err := c.ExecContext(ctx, "ALTER USER "+p.account(standby.name)+" ACCOUNT UNLOCK"); err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), p.classify(fmt.Errorf("unlocking %s: %w", standby.name, err)))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", a.id()).Bool("created_account", !standby.exists).Msg("mysql: gave a new password to the standby account")
	return plugin.Key{ID: a.id(), Value: p.value(standby.name, pw), CreatedAt: time.Unix(a.changed, 0).UTC(), ExpiresAt: a.expires()}, nil
}

// set locks, unlocks or revokes (locks and gives a password nobody knows)
// the key's account, refusing to leave neither account unlocked.
func (p *Alternating) set(ctx context.Context, keyID, state string) error {
	name, ts, err := ParseKeyID(keyID)
	if err != nil {
		return err
	}
	if name != p.users[0] && name != p.users[1] {
		return fmt.Errorf("%w: %s: key %s names neither %s nor %s", plugin.ErrNotFound, p.Target(), keyID, p.users[0], p.users[1])
	}
	c, done, mariadb, as, err := p.state(ctx)
	if err != nil {
		return err
	}
	defer done()
	a := as[name]
	if !a.exists || a.fp != ts {
		if state == "revoked" {
			return nil
		}
		return fmt.Errorf("%w: %s: account %s no longer holds key %s", plugin.ErrNotFound, p.Target(), name, keyID)
	}
	if state != "active" {
		if o := as[p.other(name)]; !o.exists || o.locked {
			return plugin.Permanent(fmt.Errorf("%s: refusing to lock %s: %s is locked too, so no credential would remain", p.Target(), name, p.other(name)))
		}
	}
	switch state {
	case "active":
		_, err = c.ExecContext(ctx, "ALTER USER "+p.account(name)+" ACCOUNT UNLOCK")
	case "inactive":
		_, err = c.ExecContext(ctx, "ALTER USER "+p.account(name)+" ACCOUNT LOCK")
	default:
		_, _, err = p.setPassword(ctx, c, mariadb, name, "ALTER", " ACCOUNT LOCK")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), p.classify(err))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", keyID).Msg("mysql: account " + state)
	return nil
}

// Delete locks the key's account and gives it a password nobody knows; it
// is never dropped.
func (p *Alternating) Delete(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "revoked")
}

// Deactivate locks the key's account (ACCOUNT LOCK), keeping its password.
func (p *Alternating) Deactivate(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "inactive")
}

// Activate unlocks it again.
func (p *Alternating) Activate(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "active")
}

// List returns the unlocked accounts.
func (p *Alternating) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	_, done, _, as, err := p.state(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []plugin.KeyInfo
	for _, n := range p.users {
		if a := as[n]; a.exists && !a.locked {
			out = append(out, plugin.KeyInfo{ID: a.id(), Status: plugin.KeyActive, CreatedAt: time.Unix(a.changed, 0).UTC(), ExpiresAt: a.expires()})
		}
	}
	if len(out) == 2 && out[1].CreatedAt.Before(out[0].CreatedAt) {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

// LastUsed reports now while the key's account has a session open
// (information_schema.PROCESSLIST; the admin needs PROCESS), zero
// otherwise.
func (p *Alternating) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	name, ts, err := ParseKeyID(keyID)
	if err != nil {
		return time.Time{}, err
	}
	c, done, _, as, err := p.state(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer done()
	if a := as[name]; !a.exists || a.fp != ts {
		return time.Time{}, nil
	}
	var n int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", name).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("%s: reading sessions: %w", p.Target(), p.classify(err))
	}
	if n > 0 {
		return time.Now().UTC(), nil
	}
	return time.Time{}, nil
}
