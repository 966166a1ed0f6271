package http

import (
	"testing"

	"github.com/rekeyhq/rekey/providers"
)

// TestAbilitiesFollowTheSpec: each optional ability is present exactly
// when its requests are configured (capacity needs list, deactivate needs
// activate).
func TestAbilitiesFollowTheSpec(t *testing.T) {
	op := &Op{}
	for mask := range 1 << 5 {
		set := func(i int) bool { return mask&(1<<i) != 0 }
		s := Spec{Target: "http:test", Client: &Client{Kind: "http"}, Create: op, Delete: op}
		if set(0) {
			s.List = op
		}
		if set(1) {
			s.MaxKeys = 2
		}
		if set(2) {
			s.Deactivate = op
		}
		if set(3) {
			s.Activate = op
		}
		if set(4) {
			s.LastUsed = op
		}
		p := NewFromSpec(s)
		_, list := providers.AsLister(p)
		_, capacity := providers.AsCapacity(p)
		_, deact := providers.AsDeactivator(p)
		_, usage := providers.AsUsageReporter(p)
		_, prop := providers.AsPropagator(p)
		if list != set(0) || capacity != (set(0) && set(1)) || deact != (set(2) && set(3)) || usage != set(4) || prop {
			t.Errorf("mask %05b: list %v capacity %v deactivate %v usage %v propagation %v", mask, list, capacity, deact, usage, prop)
		}
		if _, ok := p.(interface{ Spec() Spec }); !ok {
			t.Errorf("mask %05b: the provider lost its Spec method", mask)
		}
	}
}
