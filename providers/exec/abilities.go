package exec

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// The optional abilities, each a small type over the Provider. New embeds
// exactly the configured ones in the value it returns.
type (
	lister      struct{ p *Provider }
	capacity    struct{ p *Provider }
	deactivator struct{ p *Provider }
	usage       struct{ p *Provider }
)

var (
	_ providers.Lister        = lister{}
	_ providers.Capacity      = capacity{}
	_ providers.Deactivator   = deactivator{}
	_ providers.UsageReporter = usage{}
)

// List runs the list command.
func (a lister) List(ctx context.Context) ([]plugin.KeyInfo, error) { return a.p.listKeys(ctx) }

// MaxKeys returns the max_keys option.
func (a capacity) MaxKeys() int { return a.p.maxKeys }

// Deactivate runs the deactivate command.
func (a deactivator) Deactivate(ctx context.Context, keyID string) error {
	return a.p.runDeactivate(ctx, keyID)
}

// Activate runs the activate command.
func (a deactivator) Activate(ctx context.Context, keyID string) error {
	return a.p.runActivate(ctx, keyID)
}

// LastUsed runs the last_used command.
func (a usage) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	return a.p.runLastUsed(ctx, keyID)
}

// UsageReportingDelay returns the usage_delay option.
func (a usage) UsageReportingDelay() time.Duration { return a.p.usageDelay }

const (
	hasList = 1 << iota
	hasCapacity
	hasDeactivate
	hasUsage
)

// withAbilities returns p wrapped so that it implements exactly the
// optional interfaces whose commands are configured. Capacity needs list,
// which the factory enforces.
func (p *Provider) withAbilities() providers.Provider {
	mask := 0
	if p.list != nil {
		mask |= hasList
	}
	if p.maxKeys > 0 {
		mask |= hasCapacity
	}
	if p.deactivate != nil {
		mask |= hasDeactivate
	}
	if p.lastUsed != nil {
		mask |= hasUsage
	}
	l, c, d, u := lister{p}, capacity{p}, deactivator{p}, usage{p}
	switch mask {
	case hasList:
		return struct {
			*Provider
			lister
		}{p, l}
	case hasList | hasCapacity:
		return struct {
			*Provider
			lister
			capacity
		}{p, l, c}
	case hasDeactivate:
		return struct {
			*Provider
			deactivator
		}{p, d}
	case hasUsage:
		return struct {
			*Provider
			usage
		}{p, u}
	case hasList | hasDeactivate:
		return struct {
			*Provider
			lister
			deactivator
		}{p, l, d}
	case hasList | hasUsage:
		return struct {
			*Provider
			lister
			usage
		}{p, l, u}
	case hasDeactivate | hasUsage:
		return struct {
			*Provider
			deactivator
			usage
		}{p, d, u}
	case hasList | hasCapacity | hasDeactivate:
		return struct {
			*Provider
			lister
			capacity
			deactivator
		}{p, l, c, d}
	case hasList | hasCapacity | hasUsage:
		return struct {
			*Provider
			lister
			capacity
			usage
		}{p, l, c, u}
	case hasList | hasDeactivate | hasUsage:
		return struct {
			*Provider
			lister
			deactivator
			usage
		}{p, l, d, u}
	case hasList | hasCapacity | hasDeactivate | hasUsage:
		return struct {
			*Provider
			lister
			capacity
			deactivator
			usage
		}{p, l, c, d, u}
	}
	return p
}
