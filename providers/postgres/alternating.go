package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
)

func (p *Alternating) read(ctx context.Context, c *pgx.Conn) (map[string]role, error) {
	rs, err := readRoles(ctx, c, p.roles[0], p.roles[1])
	if err != nil {
		return nil, p.classify(fmt.Errorf("%s: reading roles: %w", p.Target(), err))
	}
	return rs, nil
}

func (p *Alternating) other(name string) string {
	if name == p.roles[0] {
		return p.roles[1]
	}
	return p.roles[0]
}

func (p *Alternating) owns(name string) bool { return name == p.roles[0] || name == p.roles[1] }

// pick returns the active role (the one cloned) and the standby (the one
// given the new password) for rotation rot.
func (p *Alternating) pick(rs map[string]role, rot plugin.Rotation) (active, standby role, err error) {
	for _, n := range p.roles {
		if r := rs[n]; r.exists && r.meta.rotation == rot.ID && r.meta.state != stateRevoked {
			return rs[p.other(n)], r, nil // this rotation's create, run again
		}
	}
	var login []role
	for _, n := range p.roles {
		if rs[n].canLogin {
			login = append(login, rs[n])
		}
	}
	switch len(login) {
	case 0:
		return role{}, role{}, plugin.Permanent(fmt.Errorf("neither %s nor %s exists and can log in: the alternating strategy starts from the role applications use today (the first of usernames)", p.roles[0], p.roles[1]))
	case 2:
		return role{}, role{}, plugin.Permanent(fmt.Errorf("%w: both %s and %s can log in; rekey gives the new password to the role no application uses, so one must be locked: lock the unused one (ALTER ROLE ... NOLOGIN) and rotate again", plugin.ErrLimit, p.roles[0], p.roles[1]))
	}
	active, standby = login[0], rs[p.other(login[0].name)]
	if standby.exists && standby.meta.state == stateInactive {
		return role{}, role{}, plugin.Permanent(fmt.Errorf("%w: role %s is deactivated but not revoked (an earlier rotation's soak): finish it (rekey rotate) first", plugin.ErrLimit, standby.name))
	}
	return active, standby, nil
}

// Create gives a new password to the standby role, creating it first as a
// clone of the active role when it does not exist, and bringing its
// attributes and role memberships in line with the active role's, all in
// one transaction with rekey's bookkeeping in its comment. The active role
// is not touched.
func (p *Alternating) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	rs, err := p.read(ctx, c)
	if err != nil {
		return plugin.Key{}, err
	}
	active, standby, err := p.pick(rs, rot)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	if active.super || active.repl || active.bypass {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: role %s is a superuser or has REPLICATION or BYPASSRLS: rekey does not clone privileged roles", p.Target(), active.name))
	}
	groups, err := memberships(ctx, c, active.name)
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: reading the memberships of %s: %w", p.Target(), active.name, err))
	}
	have, err := memberships(ctx, c, standby.name)
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: reading the memberships of %s: %w", p.Target(), standby.name, err))
	}
	var cycle bool
	if standby.exists {
		if err := c.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", active.name, standby.name).Scan(&cycle); err != nil {
			return plugin.Key{}, p.classify(fmt.Errorf("%s: %w", p.Target(), err))
		}
	}
	pw, verifier, err := p.newPassword()
	if err != nil {
		return plugin.Key{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	until, expires, err := validUntil(active, now, rot.KeyTTL)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	m := meta{managed: true, policy: rot.Policy, gen: rot.Generation, rotation: rot.ID, created: now, state: stateActive}
	if rot.KeyTTL > 0 {
		m.expires = expires
	}
	attrs := " LOGIN"
	if active.inherit {
		attrs += " INHERIT"
	} else {
		attrs += " NOINHERIT"
	}
	if active.createDB {
		attrs += " CREATEDB"
	} else if standby.createDB {
		attrs += " NOCREATEDB"
	}
	attrs += " CONNECTION LIMIT " + strconv.Itoa(active.connLimit) + " PASSWORD " + literal(verifier) + until
	err = inTx(ctx, c, func(tx pgx.Tx) error {
		verb := "ALTER"
		if !standby.exists {
			verb = "CREATE"
		}
		if _, err := tx.Exec(ctx, verb+" ROLE "+ident(standby.name)+attrs); err != nil {
			return err
		}
		if _, ok := have[active.name]; !ok && !cycle {
			if _, err := tx.Exec(ctx, "GRANT "+ident(active.name)+" TO "+ident(standby.name)); err != nil {
				return err
			}
		}
		for g, admin := range groups {
			if g == standby.name {
				continue
			}
			if hadAdmin, ok := have[g]; ok && (hadAdmin || !admin) {
				continue
			}
			q := "GRANT " + ident(g) + " TO " + ident(standby.name)
			if admin {
				q += " WITH ADMIN OPTION"
			}
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return setMeta(ctx, tx, standby.name, m)
	})
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: preparing role %s as a clone of %s: %w", p.Target(), standby.name, active.name, err))
	}
	id := KeyID(standby.name, rot.Generation)
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", id).Bool("created_role", !standby.exists).Msg("postgres: gave a new password to the standby role")
	return plugin.Key{ID: id, Value: p.value(standby.name, pw), CreatedAt: now, ExpiresAt: expires}, nil
}

// memberships returns the roles that name is a direct member of, with
// whether it holds the admin option.
func memberships(ctx context.Context, c *pgx.Conn, name string) (map[string]bool, error) {
	rows, err := c.Query(ctx, `SELECT g.rolname, m.admin_option FROM pg_auth_members m
		JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1`, name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for rows.Next() {
		var g string
		var admin bool
		if err := rows.Scan(&g, &admin); err != nil {
			rows.Close()
			return nil, err
		}
		out[g] = out[g] || admin
	}
	return out, rows.Err()
}

// lockable reads the key's role and checks that it still holds the key's
// generation. ok is false when the key no longer exists (the role was
// dropped, revoked, or reused by a later rotation).
func (p *Alternating) lockable(ctx context.Context, c *pgx.Conn, keyID string) (r role, rs map[string]role, ok bool, err error) {
	name, gen, err := ParseKeyID(keyID)
	if err != nil {
		return role{}, nil, false, err
	}
	if !p.owns(name) {
		return role{}, nil, false, fmt.Errorf("%w: %s: key %s names neither %s nor %s", plugin.ErrNotFound, p.Target(), keyID, p.roles[0], p.roles[1])
	}
	rs, err = p.read(ctx, c)
	if err != nil {
		return role{}, nil, false, err
	}
	r = rs[name]
	return r, rs, r.holds(gen), nil
}

// setLogin switches the role's LOGIN attribute (and, to revoke, removes
// its password) with its bookkeeping, refusing to leave neither role able
// to log in.
func (p *Alternating) setLogin(ctx context.Context, keyID, state string) error {
	c, err := p.connect(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, rs, ok, err := p.lockable(ctx, c, keyID)
	if err != nil {
		return err
	}
	if !ok {
		if state == stateRevoked {
			return nil
		}
		return fmt.Errorf("%w: %s: role %s no longer holds key %s", plugin.ErrNotFound, p.Target(), r.name, keyID)
	}
	if state != stateActive && !rs[p.other(r.name)].canLogin {
		return plugin.Permanent(fmt.Errorf("%s: refusing to lock %s: %s cannot log in either, so no credential would remain", p.Target(), r.name, p.other(r.name)))
	}
	m := r.meta
	if !m.managed {
		m = meta{managed: true, policy: p.policy}
	}
	m.state = state
	q := "ALTER ROLE " + ident(r.name)
	switch state {
	case stateActive:
		q += " LOGIN"
	case stateInactive:
		q += " NOLOGIN"
	case stateRevoked:
		q += " NOLOGIN PASSWORD NULL"
	}
	err = inTx(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
		return setMeta(ctx, tx, r.name, m)
	})
	if err != nil {
		return p.classify(fmt.Errorf("%s: %s role %s: %w", p.Target(), verbOf(state), r.name, err))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", keyID).Msg("postgres: " + verbOf(state) + " role " + r.name)
	if state != stateActive && p.terminateAfter > 0 {
		if _, err := p.terminate(ctx, c, r.name, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

func verbOf(state string) string {
	switch state {
	case stateActive:
		return "re-activated"
	case stateInactive:
		return "deactivated (NOLOGIN)"
	}
	return "locked (NOLOGIN, password removed)"
}

// Delete locks the key's role (NOLOGIN, password removed) but never drops
// it: it may own objects, and the next rotation reuses it. A key whose
// role was already locked, dropped or reused by a later rotation is gone
// already.
func (p *Alternating) Delete(ctx context.Context, keyID string) error {
	return p.setLogin(ctx, keyID, stateRevoked)
}

// Deactivate sets NOLOGIN on the key's role; its password is kept so that
// Activate can bring it back at once.
func (p *Alternating) Deactivate(ctx context.Context, keyID string) error {
	return p.setLogin(ctx, keyID, stateInactive)
}

// Activate sets LOGIN on the key's role again.
func (p *Alternating) Activate(ctx context.Context, keyID string) error {
	return p.setLogin(ctx, keyID, stateActive)
}

// List returns the roles that hold a password: those that can log in, and
// those deactivated by rekey (inactive).
func (p *Alternating) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	rs, err := p.read(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []plugin.KeyInfo
	for _, n := range p.roles {
		r := rs[n]
		switch {
		case !r.exists:
		case r.canLogin:
			out = append(out, plugin.KeyInfo{ID: KeyID(n, r.gen()), Status: plugin.KeyActive, CreatedAt: r.meta.created, RotationID: r.meta.rotation, ExpiresAt: r.validUntil})
		case r.meta.state == stateInactive:
			out = append(out, plugin.KeyInfo{ID: KeyID(n, r.gen()), Status: plugin.KeyInactive, CreatedAt: r.meta.created, RotationID: r.meta.rotation, ExpiresAt: r.validUntil})
		}
	}
	if len(out) == 2 && out[1].CreatedAt.Before(out[0].CreatedAt) {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

// LastUsed reports now while the key's role has a session open, and zero
// otherwise. With terminate_sessions_after, sessions still open that long
// after the other role got its newer password are ended first.
func (p *Alternating) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, rs, ok, err := p.lockable(ctx, c, keyID)
	if err != nil || !ok {
		return time.Time{}, err
	}
	n, err := sessions(ctx, c, r.name, time.Time{})
	if err != nil {
		return time.Time{}, p.classify(fmt.Errorf("%s: reading sessions: %w", p.Target(), err))
	}
	next := rs[p.other(r.name)].meta
	if n > 0 && p.terminateAfter > 0 && next.gen > r.gen() && !next.created.IsZero() && time.Since(next.created) >= p.terminateAfter {
		if n, err = p.terminate(ctx, c, r.name, time.Time{}); err != nil {
			return time.Time{}, err
		}
	}
	if n > 0 {
		return time.Now().UTC(), nil
	}
	return time.Time{}, nil
}
