package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
)

func (p *Single) read(ctx context.Context, c *pgx.Conn) (role, error) {
	rs, err := readRoles(ctx, c, p.role)
	if err != nil {
		return role{}, p.classify(fmt.Errorf("%s: reading role %s: %w", p.Target(), p.role, err))
	}
	return rs[p.role], nil
}

// Create sets a new password on the role, in one transaction with rekey's
// bookkeeping in the role's comment. The previous password stops working
// at once.
func (p *Single) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, err := p.read(ctx, c)
	if err != nil {
		return plugin.Key{}, err
	}
	if !r.exists {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: role %s does not exist: create it (CREATE ROLE ... LOGIN) or fix username", p.Target(), p.role))
	}
	if !r.canLogin {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: role %s cannot log in (NOLOGIN): a new password would not work; run ALTER ROLE ... LOGIN or fix username", p.Target(), p.role))
	}
	pw, verifier, err := p.newPassword()
	if err != nil {
		return plugin.Key{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	until, expires, err := validUntil(r, now, rot.KeyTTL)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	m := meta{managed: true, policy: rot.Policy, gen: rot.Generation, rotation: rot.ID, created: now, state: stateActive}
	if rot.KeyTTL > 0 {
		m.expires = expires
	}
	err = inTx(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(p.role)+" PASSWORD "+literal(verifier)+until); err != nil {
			return err
		}
		return setMeta(ctx, tx, p.role, m)
	})
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: setting the password of role %s: %w", p.Target(), p.role, err))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", KeyID(p.role, rot.Generation)).Msg("postgres: set a new password (single role: the previous password no longer works)")
	return plugin.Key{ID: KeyID(p.role, rot.Generation), Value: p.value(p.role, pw), CreatedAt: now, ExpiresAt: expires}, nil
}

// Delete of an older generation changes nothing: its password was replaced
// when the next one was created (with terminate_sessions_after, sessions
// opened before that are ended). Deleting the current generation cannot
// bring back the previous password, which the role no longer has; the role
// keeps the new one and the error is logged.
func (p *Single) Delete(ctx context.Context, keyID string) error {
	_, gen, err := ParseKeyID(keyID)
	if err != nil {
		return err
	}
	c, err := p.connect(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, err := p.read(ctx, c)
	if err != nil || !r.exists {
		return err
	}
	if r.holds(gen) {
		zerolog.Ctx(ctx).Error().Str("target", p.Target()).Str("key_id", keyID).
			Msg("postgres: single role: the previous password cannot be restored; the role keeps the password of this rotation, which no sink serves any more: rotate again (rekey rotate) so that dependents get a working one, or use strategy = \"alternating\"")
		return nil
	}
	if p.terminateAfter > 0 && r.meta.managed && !r.meta.created.IsZero() {
		if _, err := p.terminate(ctx, c, p.role, r.meta.created); err != nil {
			return err
		}
	}
	return nil
}

// List returns the role's one password, if the role exists.
func (p *Single) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, err := p.read(ctx, c)
	if err != nil || !r.exists {
		return nil, err
	}
	st := plugin.KeyActive
	if !r.canLogin {
		st = plugin.KeyInactive
	}
	return []plugin.KeyInfo{{ID: KeyID(p.role, r.gen()), Status: st, CreatedAt: r.meta.created, RotationID: r.meta.rotation, ExpiresAt: r.validUntil}}, nil
}

// LastUsed reports now while a session opened with an older generation's
// password (before the current password was set) is still open, and zero
// otherwise.
func (p *Single) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	_, gen, err := ParseKeyID(keyID)
	if err != nil {
		return time.Time{}, err
	}
	c, err := p.connect(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", p.Target(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, err := p.read(ctx, c)
	if err != nil || !r.exists {
		return time.Time{}, err
	}
	var before time.Time
	if !r.holds(gen) {
		if r.meta.created.IsZero() {
			return time.Time{}, nil
		}
		before = r.meta.created
	}
	n, err := sessions(ctx, c, p.role, before)
	if err != nil {
		return time.Time{}, p.classify(fmt.Errorf("%s: reading sessions: %w", p.Target(), err))
	}
	if n > 0 && !before.IsZero() && p.terminateAfter > 0 && time.Since(before) >= p.terminateAfter {
		if n, err = p.terminate(ctx, c, p.role, before); err != nil {
			return time.Time{}, err
		}
	}
	if n > 0 {
		return time.Now().UTC(), nil
	}
	return time.Time{}, nil
}
