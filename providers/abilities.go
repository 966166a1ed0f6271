package providers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/plugin"
)

// Ability is one optional ability of a provider, or a set of them.
type Ability uint

// The optional abilities, one per optional interface.
const (
	AbilityList        Ability = 1 << iota // Lister
	AbilityCapacity                        // Capacity
	AbilityDeactivate                      // Deactivator
	AbilityUsage                           // UsageReporter
	AbilityPropagation                     // Propagator
)

// Declarer is implemented by a provider whose abilities depend on its
// configuration (the exec and http kinds). Such a provider has the methods
// of every optional interface it may have; Abilities says which of them it
// has, and the others answer errors.ErrUnsupported (or zero).
//
// Callers check an ability with AsLister, AsCapacity, AsDeactivator,
// AsUsageReporter and AsPropagator, never with a type assertion.
type Declarer interface {
	Abilities() Ability
}

// as returns p as T when p implements T and, if p is a Declarer, declares a.
func as[T any](p Provider, a Ability) (T, bool) {
	t, ok := p.(T)
	if !ok {
		return t, false
	}
	if d, ok := p.(Declarer); ok && d.Abilities()&a != a {
		var zero T
		return zero, false
	}
	return t, true
}

// AsLister returns p's Lister ability, if it has one.
func AsLister(p Provider) (Lister, bool) { return as[Lister](p, AbilityList) }

// AsCapacity returns p's Capacity ability, if it has one.
func AsCapacity(p Provider) (Capacity, bool) { return as[Capacity](p, AbilityCapacity) }

// AsDeactivator returns p's Deactivator ability, if it has one.
func AsDeactivator(p Provider) (Deactivator, bool) { return as[Deactivator](p, AbilityDeactivate) }

// AsUsageReporter returns p's UsageReporter ability, if it has one.
func AsUsageReporter(p Provider) (UsageReporter, bool) {
	return as[UsageReporter](p, AbilityUsage)
}

// AsPropagator returns p's Propagator ability, if it has one.
func AsPropagator(p Provider) (Propagator, bool) { return as[Propagator](p, AbilityPropagation) }

// Optional is the abilities of a configurable provider as values: a kind
// embeds it in its Provider, fills the functions of the abilities that are
// configured, and so implements Declarer and every optional interface.
type Optional struct {
	// Kind names the provider in the error of a missing ability.
	Kind string
	// ListFunc makes a Lister.
	ListFunc func(ctx context.Context) ([]plugin.KeyInfo, error)
	// Limit > 0, with ListFunc, makes a Capacity.
	Limit int
	// DeactivateFunc and ActivateFunc, both set, make a Deactivator.
	DeactivateFunc, ActivateFunc func(ctx context.Context, keyID string) error
	// LastUsedFunc makes a UsageReporter, with UsageDelay.
	LastUsedFunc func(ctx context.Context, keyID string) (time.Time, error)
	UsageDelay   time.Duration
	// Propagation > 0 makes a Propagator.
	Propagation time.Duration
}

var (
	_ Declarer      = (*Optional)(nil)
	_ Lister        = (*Optional)(nil)
	_ Capacity      = (*Optional)(nil)
	_ Deactivator   = (*Optional)(nil)
	_ UsageReporter = (*Optional)(nil)
	_ Propagator    = (*Optional)(nil)
)

// Abilities implements Declarer.
func (o *Optional) Abilities() Ability {
	var a Ability
	if o.ListFunc != nil {
		a |= AbilityList
		if o.Limit > 0 {
			a |= AbilityCapacity
		}
	}
	if o.DeactivateFunc != nil && o.ActivateFunc != nil {
		a |= AbilityDeactivate
	}
	if o.LastUsedFunc != nil {
		a |= AbilityUsage
	}
	if o.Propagation > 0 {
		a |= AbilityPropagation
	}
	return a
}

func (o *Optional) unsupported(op string) error {
	return plugin.Permanent(fmt.Errorf("%s provider: %s is not configured: %w", o.Kind, op, errors.ErrUnsupported))
}

// List implements Lister.
func (o *Optional) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	if o.Abilities()&AbilityList == 0 {
		return nil, o.unsupported("list")
	}
	return o.ListFunc(ctx)
}

// MaxKeys implements Capacity; 0 without the ability.
func (o *Optional) MaxKeys() int {
	if o.Abilities()&AbilityCapacity == 0 {
		return 0
	}
	return o.Limit
}

// Deactivate implements Deactivator.
func (o *Optional) Deactivate(ctx context.Context, keyID string) error {
	if o.Abilities()&AbilityDeactivate == 0 {
		return o.unsupported("deactivate")
	}
	return o.DeactivateFunc(ctx, keyID)
}

// Activate implements Deactivator.
func (o *Optional) Activate(ctx context.Context, keyID string) error {
	if o.Abilities()&AbilityDeactivate == 0 {
		return o.unsupported("activate")
	}
	return o.ActivateFunc(ctx, keyID)
}

// LastUsed implements UsageReporter.
func (o *Optional) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	if o.Abilities()&AbilityUsage == 0 {
		return time.Time{}, o.unsupported("last_used")
	}
	return o.LastUsedFunc(ctx, keyID)
}

// UsageReportingDelay implements UsageReporter.
func (o *Optional) UsageReportingDelay() time.Duration {
	if o.Abilities()&AbilityUsage == 0 {
		return 0
	}
	return o.UsageDelay
}

// PropagationDelay implements Propagator.
func (o *Optional) PropagationDelay() time.Duration { return o.Propagation }
