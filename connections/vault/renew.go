package vault

import (
	"context"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"
)

// renewLoop keeps the token of the last login alive with the API's
// LifetimeWatcher, and logs in again when renewal ends (the token reached
// its max TTL, or renewing failed). It runs until ctx is done.
func (c *Conn) renewLoop(ctx context.Context) {
	defer close(c.loopDone)
	log := zerolog.Ctx(ctx).With().Str("connection", c.name).Logger()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.loginCh:
		}
		c.mu.Lock()
		sec, cl, gen := c.loginSecret, c.client, c.gen
		c.mu.Unlock()
		if sec == nil || sec.Auth == nil || cl == nil {
			continue
		}
		if !sec.Auth.Renewable {
			if !c.waitExpiry(ctx, time.Duration(sec.Auth.LeaseDuration)*time.Second) {
				return
			}
		} else {
			w, err := cl.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
			if err != nil {
				log.Warn().Err(err).Msg("cannot renew the vault token; it will be replaced when it expires")
				continue
			}
			go w.Start()
			ended, err := c.watch(ctx, w)
			w.Stop()
			switch ended {
			case watchCancelled:
				return
			case watchNewLogin:
				c.signalLogin()
				continue
			}
			if err != nil {
				log.Warn().Err(classify(ctx, err)).Msg("renewing the vault token failed; logging in again")
			} else {
				log.Debug().Msg("the vault token reached its max TTL; logging in again")
			}
		}
		c.relogin(ctx, gen, log)
	}
}

type watchEnd int

const (
	watchCancelled watchEnd = iota
	watchNewLogin
	watchDone
)

func (c *Conn) watch(ctx context.Context, w *api.LifetimeWatcher) (watchEnd, error) {
	for {
		select {
		case <-ctx.Done():
			return watchCancelled, nil
		case <-c.loginCh:
			return watchNewLogin, nil
		case err := <-w.DoneCh():
			return watchDone, err
		case <-w.RenewCh():
		}
	}
}

// waitExpiry waits for a non-renewable token to come close to its end; it
// returns false when ctx is done first. A newer login ends the wait early
// (and is picked up by the caller's loop).
func (c *Conn) waitExpiry(ctx context.Context, ttl time.Duration) bool {
	if ttl <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(ttl * 9 / 10)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-c.loginCh:
		c.signalLogin()
		return true
	case <-t.C:
		return true
	}
}

func (c *Conn) signalLogin() {
	select {
	case c.loginCh <- struct{}{}:
	default:
	}
}

func (c *Conn) relogin(ctx context.Context, gen uint64, log zerolog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.closed {
		return
	}
	c.authed = false
	lctx, cancel := context.WithTimeout(ctx, c.s.requestTimeout)
	defer cancel()
	if err := c.ensureTokenLocked(lctx); err != nil {
		log.Warn().Err(classify(lctx, err)).Msg("logging in to vault again failed; the next request will retry")
	}
}
