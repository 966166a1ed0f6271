package rotator

import (
	"context"

	"github.com/rekeyhq/rekey/policies"
)

// policyUse counts, per policy value, the calls that are advancing a
// rotation under it. A policy value belongs to one loaded configuration
// (and its connections); the daemon closes a replaced configuration's
// connections only once no call uses any of its policies (WaitUnused).
type policyUse struct {
	n        map[*policies.Policy]int
	released chan struct{}
}

// usePolicy returns the named policy of the current set and counts it in
// use until release is called. Reading the set and counting happen under
// one lock, so that a WaitUnused after SetPolicies sees every call that
// picked an older policy value.
func (e *Engine) usePolicy(name string) (p *policies.Policy, ok bool, release func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok = e.policies[name]
	if !ok {
		return nil, false, func() {}
	}
	if e.use.n == nil {
		e.use.n = map[*policies.Policy]int{}
		e.use.released = make(chan struct{})
	}
	e.use.n[p]++
	return p, true, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.use.n[p]--; e.use.n[p] == 0 {
			delete(e.use.n, p)
		}
		close(e.use.released)
		e.use.released = make(chan struct{})
	}
}

// WaitUnused blocks until no call (Advance, Rotate, Reconcile, the
// scheduler) advances a rotation under any of ps, or ctx ends. Call it
// after SetPolicies replaced ps: calls that start later use the new set.
func (e *Engine) WaitUnused(ctx context.Context, ps []*policies.Policy) error {
	for {
		e.mu.Lock()
		busy := false
		for _, p := range ps {
			if e.use.n[p] > 0 {
				busy = true
				break
			}
		}
		ch := e.use.released
		e.mu.Unlock()
		if !busy {
			return nil
		}
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
