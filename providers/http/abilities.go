package http

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// The optional abilities, each a small type over the Provider;
// withAbilities embeds exactly the configured ones.
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

// List sends the list request, following pages.
func (a lister) List(ctx context.Context) ([]plugin.KeyInfo, error) { return a.p.list(ctx) }

// MaxKeys returns max_keys.
func (a capacity) MaxKeys() int { return a.p.s.MaxKeys }

// Deactivate sends the deactivate request.
func (a deactivator) Deactivate(ctx context.Context, keyID string) error {
	return a.p.setState(ctx, "deactivate", a.p.s.Deactivate, keyID)
}

// Activate sends the activate request.
func (a deactivator) Activate(ctx context.Context, keyID string) error {
	return a.p.setState(ctx, "activate", a.p.s.Activate, keyID)
}

// LastUsed sends the last_used request.
func (a usage) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	return a.p.lastUsed(ctx, keyID)
}

// UsageReportingDelay returns usage_delay.
func (a usage) UsageReportingDelay() time.Duration { return a.p.s.UsageDelay }

const (
	hasList = 1 << iota
	hasCapacity
	hasDeactivate
	hasUsage
)

// withAbilities returns p wrapped so that it implements exactly the
// optional interfaces whose requests are configured. Capacity needs list,
// which the factory enforces.
func (p *Provider) withAbilities() providers.Provider {
	mask := 0
	if p.s.List != nil {
		mask |= hasList
	}
	if p.s.MaxKeys > 0 && p.s.List != nil {
		mask |= hasCapacity
	}
	if p.s.Deactivate != nil && p.s.Activate != nil {
		mask |= hasDeactivate
	}
	if p.s.LastUsed != nil {
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
