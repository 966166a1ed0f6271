package rotator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// The fault harness drives the engine through random sequences of plugin
// outcomes and checks the promise of rotation-protocol.md against the
// ledger of the fakes (fakes_test.go) after every event. Reproduce a
// failing sequence with the seed it prints:
//
//	go test ./rotator -run 'TestFaultHarness/random' -harness.seed=N -harness.n=1 -v
var (
	harnessSeed = flag.Uint64("harness.seed", 0, "first seed of the fault harness (default: $REKEY_HARNESS_SEED, else the clock)")
	harnessN    = flag.Int("harness.n", 0, "number of fault harness sequences (default 2000, 200 with -short)")
)

// faultKind is what the harness makes one plugin call do.
type faultKind int

const (
	faultNone faultKind = iota
	// faultErrBefore: the call fails and has no effect, but does not say
	// so: the engine must treat it as unknown.
	faultErrBefore
	// faultNoEffect: the call fails, has no effect and says so
	// (plugin.NoEffect), which the engine may trust.
	faultNoEffect
	// faultErrAfter: the call takes effect, then reports an error (a lost
	// acknowledgement, a command that exits 1 after doing its work).
	faultErrAfter
	// faultLeakyErr: like faultErrAfter, and the error quotes the key's
	// secret value (a careless plugin echoing a response body).
	faultLeakyErr
	// faultHangAfter: the call takes effect, then hangs until its context
	// ends (a reload hook that applied the key and never returned).
	faultHangAfter
	// faultPartial: a reload hook that reloads only some dependents, then
	// fails or hangs.
	faultPartial
	// faultCrashBefore: the process dies before the call takes effect.
	faultCrashBefore
	// faultCrashAfter: the process dies after the call took effect, before
	// the engine learns of it.
	faultCrashAfter
	// faultCrashFailpoint: the process dies at one of the engine's
	// failpoints (between a call and its journal entry).
	faultCrashFailpoint
	numFaultKinds
)

var faultNames = [numFaultKinds]string{"none", "error_before_effect", "error_marked_no_effect", "effect_then_error", "effect_then_error_quoting_secret",
	"effect_then_hang", "partial_reload", "crash_before_effect", "crash_after_effect", "crash_at_failpoint"}

func (f faultKind) String() string { return faultNames[f] }

// Operations of the fakes, the unit the harness injects faults into.
const (
	opCreate     = "create"
	opDelete     = "delete"
	opList       = "list"
	opDeactivate = "deactivate"
	opActivate   = "activate"
	opLastUsed   = "last_used"
	opCurrent    = "sink.current"
	opStage      = "sink.stage"
	opPromote    = "sink.promote"
	opRestore    = "sink.rollback"
	opReload     = "reload"
	opProbeKey   = "probe.key"
	opProbeDep   = "probe.dependent"
)

// eligible lists the faults that make sense for an operation: a read has
// no effect to take before failing, and only the reload hook reloads
// dependents partially.
func eligible(op string, hasKey bool) []faultKind {
	switch op {
	case opList, opCurrent, opLastUsed, opProbeDep:
		return []faultKind{faultErrBefore, faultNoEffect, faultHangAfter, faultCrashBefore}
	case opProbeKey:
		return []faultKind{faultErrBefore, faultNoEffect, faultLeakyErr, faultHangAfter, faultCrashBefore}
	}
	ks := []faultKind{faultErrBefore, faultNoEffect, faultErrAfter, faultHangAfter, faultCrashBefore, faultCrashAfter}
	if hasKey {
		ks = append(ks, faultLeakyErr)
	}
	if op == opReload {
		ks = append(ks, faultPartial, faultPartial)
	}
	return ks
}

// harnessCanary starts every secret value the harness's provider issues.
const harnessCanary = "CANARYhx9q"

// crashSignal is the panic that abandons an engine mid-call, as a crash.
type crashSignal struct{ at string }

// hangCap bounds a hanging call whose context has no deadline: the engine
// would wait forever, which is itself a violation.
const hangCap = time.Second

// harnessStats counts over all sequences.
type harnessStats struct {
	sequences, events, crashes, rotations atomic.Int64
	faults                                [numFaultKinds]atomic.Int64
	shapes                                [numShapes]atomic.Int64
	fresh                                 atomic.Int64
	mu                                    sync.Mutex
	byOp                                  map[string]int64
	violations                            int64
}

func (s *harnessStats) add(op string, f faultKind) {
	s.faults[f].Add(1)
	s.mu.Lock()
	s.byOp[op]++
	s.mu.Unlock()
}

func (s *harnessStats) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault harness: %d sequences, %d rotations started, %d plugin calls, %d crashes; faults injected:", s.sequences.Load(), s.rotations.Load(), s.events.Load(), s.crashes.Load())
	total := int64(0)
	for k := faultKind(1); k < numFaultKinds; k++ {
		n := s.faults[k].Load()
		total += n
		fmt.Fprintf(&b, " %s=%d", k, n)
	}
	fmt.Fprintf(&b, " (total %d); provider shapes:", total)
	for k := harnessShape(0); k < numShapes; k++ {
		fmt.Fprintf(&b, " %s=%d", k, s.shapes[k].Load())
	}
	fmt.Fprintf(&b, "; first rotations with no earlier key: %d", s.fresh.Load())
	fmt.Fprintf(&b, "; by operation:")
	s.mu.Lock()
	ops := make([]string, 0, len(s.byOp))
	for op := range s.byOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		fmt.Fprintf(&b, " %s=%d", op, s.byOp[op])
	}
	fmt.Fprintf(&b, "; sequences with invariant violations: %d", s.violations)
	s.mu.Unlock()
	return b.String()
}

// dependent is an application that reads its key from one sink when the
// reload hook runs, and keeps using it until the next reload.
type dependent struct {
	name, sink, key string
}

// harness is one sequence: a world (the ledger), the dependents, and the
// source of faults.
type harness struct {
	w     *world
	deps  []*dependent
	seed  uint64
	rng   *rand.Rand
	stats *harnessStats
	// budget is how many faults are left to inject; rate the chance of a
	// fault at each call while the budget lasts.
	budget int
	rate   float64
	// script, when set, replaces the random choice: it gets the operation
	// and how many times it was called before.
	script func(op string, n int) faultKind
	calls  map[string]int
	// outage holds, per operation, how many more calls fail: a fault
	// often outlasts one call (a dependent that is down stays down).
	outage map[string]int
	trace  []string
	// reported holds the dependent violations already recorded, so that
	// one broken state is reported once, not after every later call.
	reported map[string]bool
}

// newHarness starts a sequence. A fresh one has no key yet: the
// dependents hold nothing and its one sink serves nothing until the first
// rotation (the quickstart's first run). Fresh sequences have one sink:
// with several, a crash between two promotes of the first rotation leaves
// one sink empty, and a later rotation that fails cannot prove its
// dependents back on the earlier state (docs/protocol.md, "A first
// rotation"): that rollback is stuck, by design, until an operator acts.
func newHarness(seed uint64, stats *harnessStats, fresh bool) *harness {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := &harness{
		w:      newWorld(nil),
		seed:   seed,
		rng:    rng,
		stats:  stats,
		budget: 1 + rng.IntN(6),
		rate:   []float64{0.05, 0.15, 0.3}[rng.IntN(3)],
		calls:  map[string]int{},
		outage: map[string]int{},

		reported: map[string]bool{},
	}
	h.w.maxKeys = 2
	if fresh {
		h.deps = []*dependent{{name: "app-a", sink: "sink:a"}, {name: "app-b", sink: "sink:a"}}
		return h
	}
	seedID := h.w.seed("sink:a", "sink:b")
	h.deps = []*dependent{{name: "app-a", sink: "sink:a", key: seedID}, {name: "app-b", sink: "sink:b", key: seedID}}
	return h
}

func (h *harness) decide(op string, hasKey bool) faultKind {
	n := h.calls[op]
	h.calls[op]++
	h.stats.events.Add(1)
	f := faultNone
	switch {
	case h.script != nil:
		f = h.script(op, n)
	case h.budget > 0 && h.outage[op] > 0:
		// An outage lasts: the same call fails again, with no effect.
		h.outage[op]--
		f = faultErrBefore
		h.budget--
	case h.budget > 0:
		// Each call draws from its own stream, so that a call retried once
		// more or less (timing) does not shift the faults of other calls.
		id := fnv.New64a()
		id.Write([]byte(op))
		rng := rand.New(rand.NewPCG(h.seed, id.Sum64()^uint64(n)))
		if rng.Float64() >= h.rate {
			break
		}
		ks := eligible(op, hasKey)
		f = ks[rng.IntN(len(ks))]
		h.budget--
		if rng.IntN(3) == 0 {
			h.outage[op] = 1 + rng.IntN(3)
		}
	}
	if f != faultNone {
		h.stats.add(op, f)
		h.trace = append(h.trace, fmt.Sprintf("%s#%d:%s", op, n, f))
	}
	return f
}

// violate records a broken invariant; call with h.w.mu held.
func (h *harness) violate(format string, args ...any) {
	h.w.violations = append(h.w.violations, fmt.Sprintf(format, args...))
}

// checkLocked verifies, after an event, that no dependent holds a key the
// provider would reject. The world itself checks the sinks and the key
// limit at every change of its ledger.
func (h *harness) checkLocked(event string) {
	for _, d := range h.deps {
		k, ok := h.w.keys[d.key]
		what := ""
		switch {
		case d.key == "":
			continue
		case !ok:
			what = "deleted"
		case !k.active:
			what = "deactivated"
		default:
			continue
		}
		if at := d.name + d.key + what; !h.reported[at] {
			h.reported[at] = true
			h.violate("after %s: dependent %s holds key %s, which the provider %s", event, d.name, d.key, what)
		}
	}
}

func (h *harness) check(event string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.checkLocked(event)
}

func (h *harness) hang(ctx context.Context, op string) error {
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(hangCap)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			h.w.mu.Lock()
			h.violate("%s hung and the engine gave it no deadline: it would wait forever", op)
			h.w.mu.Unlock()
			return fmt.Errorf("%s: hung for %s with no deadline", op, hangCap)
		}
	}
	<-ctx.Done()
	return fmt.Errorf("%s: no answer: %w", op, ctx.Err())
}

// call runs effect under the fault chosen for op. leak is the secret the
// call was given, quoted by a careless error.
func call[T any](h *harness, ctx context.Context, op, leak string, effect func() (T, error)) (T, error) {
	return apply(h, ctx, op, h.decide(op, leak != ""), leak, effect)
}

func apply[T any](h *harness, ctx context.Context, op string, f faultKind, leak string, effect func() (T, error)) (T, error) {
	var zero T
	switch f {
	case faultErrBefore:
		return zero, fmt.Errorf("%s: injected failure before any effect (connection refused)", op)
	case faultNoEffect:
		return zero, plugin.NoEffect(fmt.Errorf("%s: injected failure, refused before anything was sent", op))
	case faultCrashBefore:
		panic(crashSignal{op + " (before its effect)"})
	}
	v, err := effect()
	h.check(op)
	if err != nil {
		return v, err
	}
	switch f {
	case faultErrAfter:
		return zero, fmt.Errorf("%s: injected failure after the effect (connection reset)", op)
	case faultLeakyErr:
		return zero, fmt.Errorf("%s: injected failure after the effect; the server said: credential %q rejected", op, leak)
	case faultHangAfter:
		return zero, h.hang(ctx, op)
	case faultCrashAfter:
		panic(crashSignal{op + " (after its effect)"})
	}
	return v, nil
}

func (h *harness) value(id string) string { return harnessCanary + "-v-" + id }

// inner converts a key as the engine holds it (canary value) to the
// value the ledger fakes expect.
func (h *harness) inner(k plugin.Key) plugin.Key {
	if k.Value == nil {
		return k
	}
	v := k.Value["value"].Reveal()
	if rest, ok := strings.CutPrefix(v, harnessCanary+"-"); ok {
		v = rest
	}
	k.Value = secret.Fields{"value": secret.New(v)}
	return k
}

func reveal(k plugin.Key) string { return k.Value["value"].Reveal() }

// --- provider, sinks, probes and reload hook with faults ---

type hprov struct {
	h *harness
	p fullProv
}

func (p *hprov) Target() string { return "fake:provider" }

func (p *hprov) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	return call(p.h, ctx, opCreate, "", func() (plugin.Key, error) {
		p.h.w.mu.Lock()
		if n := len(p.h.w.keys); n >= p.h.w.maxKeys {
			p.h.violate("create called while the provider holds %d keys, its limit: an orphan or a key rekey cannot account for takes the room", n)
		}
		p.h.w.mu.Unlock()
		k, err := p.p.Create(ctx, rot)
		if err == nil {
			k.Value = secret.Fields{"value": secret.New(p.h.value(k.ID))}
		}
		return k, err
	})
}

func (p *hprov) Delete(ctx context.Context, id string) error {
	_, err := call(p.h, ctx, opDelete, "", func() (struct{}, error) { return struct{}{}, p.p.Delete(ctx, id) })
	return err
}

func (p *hprov) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	return call(p.h, ctx, opList, "", func() ([]plugin.KeyInfo, error) {
		ks, err := p.p.List(ctx)
		sort.Slice(ks, func(i, j int) bool { return ks[i].ID < ks[j].ID })
		return ks, err
	})
}

func (p *hprov) MaxKeys() int { return p.p.MaxKeys() }

func (p *hprov) Deactivate(ctx context.Context, id string) error {
	_, err := call(p.h, ctx, opDeactivate, "", func() (struct{}, error) { return struct{}{}, p.p.Deactivate(ctx, id) })
	return err
}

func (p *hprov) Activate(ctx context.Context, id string) error {
	_, err := call(p.h, ctx, opActivate, "", func() (struct{}, error) { return struct{}{}, p.p.Activate(ctx, id) })
	return err
}

func (p *hprov) LastUsed(ctx context.Context, id string) (time.Time, error) {
	return call(p.h, ctx, opLastUsed, "", func() (time.Time, error) { return p.p.LastUsed(ctx, id) })
}

func (p *hprov) UsageReportingDelay() time.Duration { return 0 }

// hplainProv is the provider shape without deactivation or usage
// reporting (an API that can only create, list and delete keys): the soak
// and the wait for an unused key do not apply, and only the grace period
// stands between commit and revocation.
type hplainProv struct{ p *hprov }

func (p hplainProv) Target() string { return p.p.Target() }
func (p hplainProv) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	return p.p.Create(ctx, rot)
}
func (p hplainProv) Delete(ctx context.Context, id string) error { return p.p.Delete(ctx, id) }
func (p hplainProv) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	return p.p.List(ctx)
}
func (p hplainProv) MaxKeys() int { return p.p.MaxKeys() }

// harnessShape is the kind of provider and revocation settings one
// sequence runs with.
type harnessShape int

const (
	// shapeFull: deactivate, last-used reporting, soak and wait_unused.
	shapeFull harnessShape = iota
	// shapePlain: create, list and delete only, with a grace period.
	shapePlain
	// shapeNoSoak: a provider that can deactivate, used without a soak
	// (the old key goes from drain straight to revocation).
	shapeNoSoak
	numShapes
)

var shapeNames = [numShapes]string{"full", "plain", "no_soak"}

func (s harnessShape) String() string { return shapeNames[s] }

type hsink struct {
	h *harness
	s *fsink
}

func (s *hsink) Location() string { return s.s.Location() }

func (s *hsink) Current(ctx context.Context) (sinks.Version, error) {
	return call(s.h, ctx, opCurrent, "", func() (sinks.Version, error) { return s.s.Current(ctx) })
}

func (s *hsink) Stage(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	return call(s.h, ctx, opStage, reveal(key), func() (sinks.Version, error) { return s.s.Stage(ctx, rot, s.h.inner(key), st) })
}

func (s *hsink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	return call(s.h, ctx, opPromote, reveal(key), func() (sinks.Version, error) { return s.s.Promote(ctx, rot, s.h.inner(key), st) })
}

func (s *hsink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	_, err := call(s.h, ctx, opRestore, "", func() (struct{}, error) { return struct{}{}, s.s.Rollback(ctx, rot, st) })
	return err
}

type hkeyProbe struct{ h *harness }

func (p hkeyProbe) DefaultTarget() probes.Target { return probes.TargetKey }

func (p hkeyProbe) Check(ctx context.Context, key plugin.Key) error {
	_, err := call(p.h, ctx, opProbeKey, reveal(key), func() (struct{}, error) {
		return struct{}{}, keyProbe{p.h.w}.Check(ctx, p.h.inner(key))
	})
	return err
}

// hdepProbe is a health check through the dependents: it passes when
// every dependent's key is accepted by the provider.
type hdepProbe struct{ h *harness }

func (p hdepProbe) Check(ctx context.Context, key plugin.Key) error {
	_, err := call(p.h, ctx, opProbeDep, "", func() (struct{}, error) {
		w := p.h.w
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, d := range p.h.deps {
			if k, ok := w.keys[d.key]; !ok || !k.active {
				return struct{}{}, fmt.Errorf("dependent %s is rejected by the provider", d.name)
			}
		}
		return struct{}{}, nil
	})
	return err
}

// hreload reloads the dependents: each reads its sink. A partial reload
// reaches only some of them, then fails or hangs.
type hreload struct{ h *harness }

func (r hreload) Reload(ctx context.Context, rot plugin.Rotation, key plugin.Key) error {
	h := r.h
	f := h.decide(opReload, reveal(key) != "")
	if f == faultPartial {
		h.w.mu.Lock()
		for _, i := range h.rng.Perm(len(h.deps))[:1+h.rng.IntN(len(h.deps)-1)] {
			d := h.deps[i]
			d.key = h.w.served[d.sink]
		}
		h.w.record("partial reload")
		h.checkLocked("partial reload")
		h.w.mu.Unlock()
		if h.rng.IntN(2) == 0 {
			return errors.New("reload: some dependents did not answer")
		}
		return h.hang(ctx, opReload)
	}
	_, err := apply(h, ctx, opReload, f, reveal(key), func() (struct{}, error) {
		if err := (freload{h.w}).Reload(ctx, rot, key); err != nil {
			return struct{}{}, err
		}
		h.w.mu.Lock()
		for _, d := range h.deps {
			d.key = h.w.served[d.sink]
		}
		h.w.mu.Unlock()
		return struct{}{}, nil
	})
	return err
}

// --- sequences ---

// seqConfig tunes one sequence.
type seqConfig struct {
	seed  uint64
	bolt  bool // journal on disk (bbolt) rather than in memory
	stats *harnessStats
	// script replaces random faults (fixed scenarios).
	script func(op string, n int) faultKind
	// failpoint, when set, crashes the first engine there.
	failpoint string
	// shape is the provider's abilities and the revocation settings.
	shape harnessShape
	// fresh starts with no key at all (see newHarness).
	fresh bool
}

// seqResult is what one sequence found.
type seqResult struct {
	violations []string
	trace      []string
}

// runSequence runs one sequence: rotate (with crashes and restarts) until
// a rotation completes once faults are exhausted, checking the invariants
// after every plugin call and the absence of secrets in every output after
// every engine call; then checks the settled state.
func runSequence(cfg seqConfig) (res seqResult) {
	h := newHarness(cfg.seed, cfg.stats, cfg.fresh)
	if cfg.script != nil {
		h.script = cfg.script
		h.budget = 0
	}
	hp := &hprov{h: h, p: fullProvider(h.w)}
	var prov providers.Provider = hp
	revoke := policies.Revoke{Soak: 2 * time.Millisecond, WaitUnused: true}
	switch cfg.shape {
	case shapeFull:
	case shapePlain:
		prov = hplainProv{hp}
		revoke = policies.Revoke{After: 2 * time.Millisecond}
	case shapeNoSoak:
		revoke = policies.Revoke{}
	}
	if cfg.stats != nil {
		cfg.stats.shapes[cfg.shape].Add(1)
		if cfg.fresh {
			cfg.stats.fresh.Add(1)
		}
	}
	p := &policies.Policy{
		Name:     "pay",
		Schedule: policies.Schedule{Every: 30 * 24 * time.Hour},
		Provider: policies.ProviderBlock{Kind: "fake", Provider: prov},
		Sinks: []policies.SinkBlock{
			{Kind: "fake", Sink: &hsink{h: h, s: &fsink{w: h.w, loc: "sink:a"}}},
			{Kind: "fake", Sink: &hsink{h: h, s: &fsink{w: h.w, loc: "sink:b"}}},
		},
		Probes: []policies.ProbeBlock{
			{Kind: "key", Target: probes.TargetKey, Timeout: 60 * time.Millisecond, Interval: time.Millisecond, Successes: 1, Probe: hkeyProbe{h}},
			{Kind: "dep", Target: probes.TargetDependent, Timeout: 60 * time.Millisecond, Interval: time.Millisecond, Successes: 2, Probe: hdepProbe{h}},
		},
		Reloads:     []policies.ReloadBlock{{Kind: "reload", Timeout: 15 * time.Millisecond, Reloader: hreload{h}}},
		StepTimeout: 15 * time.Millisecond,
		MaxFailures: 3,
		Revoke:      revoke,
	}
	if cfg.fresh {
		p.Sinks = p.Sinks[:1]
	}
	var j Journal
	var dir string
	if cfg.bolt {
		var err error
		if dir, err = os.MkdirTemp("", "rekey-harness-"); err != nil {
			return seqResult{violations: []string{err.Error()}}
		}
		defer os.RemoveAll(dir)
		bj, err := OpenBoltJournal(dir)
		if err != nil {
			return seqResult{violations: []string{err.Error()}}
		}
		defer bj.Close()
		j = bj
	} else {
		j = NewMemJournal()
	}
	var logs bytes.Buffer
	var leaks []string
	scan := func(where string, b []byte) {
		if i := bytes.Index(b, []byte(harnessCanary)); i >= 0 {
			leaks = append(leaks, fmt.Sprintf("a secret value leaked into %s: ...%s...", where, b[max(0, i-100):min(len(b), i+30)]))
		}
	}
	obs := ObserverFunc(func(_ context.Context, ev Event) {
		b, _ := json.Marshal(ev)
		scan("an event (audit log, notifications, metrics)", b)
		if ev.Step == StepCreate && ev.Result == ResultStarted {
			cfg.stats.rotations.Add(1)
		}
	})
	engines := 0
	newEngine := func() *Engine {
		engines++
		fps := map[string]string{}
		if engines == 1 && cfg.failpoint != "" {
			fps[cfg.failpoint] = "panic"
		} else if cfg.script == nil && h.budget > 0 && h.rng.Float64() < 0.15 {
			fps[Failpoints[h.rng.IntN(len(Failpoints))]] = "panic"
		}
		e, err := New(Options{Journal: j, Logger: zerolog.New(&logs), Failpoints: fps, RecheckInterval: 2 * time.Millisecond,
			Rand: func() float64 { return 0.5 }, Observers: []Observer{obs}})
		if err != nil {
			panic(err)
		}
		e.SetPolicies([]*policies.Policy{p})
		return e
	}
	// guard runs fn as the engine's caller; a crash abandons the engine.
	guard := func(fn func()) (crashed bool) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			switch v := r.(type) {
			case crashSignal:
				h.trace = append(h.trace, "crash in "+v.at)
			case string:
				if !strings.HasPrefix(v, "failpoint ") {
					panic(r)
				}
				h.stats.add(v, faultCrashFailpoint)
				h.trace = append(h.trace, "crash at "+v)
				if h.budget > 0 {
					h.budget--
				}
			default:
				panic(r)
			}
			cfg.stats.crashes.Add(1)
			crashed = true
		}()
		fn()
		return false
	}
	ctx := context.Background()
	outputs := func(e *Engine, round string) {
		scan("the log", logs.Bytes())
		if st, err := e.Status(ctx); err == nil {
			b, _ := json.Marshal(st)
			scan("status", b)
		}
		if cfg.bolt {
			b, err := os.ReadFile(filepath.Join(dir, JournalFile))
			if err != nil {
				leaks = append(leaks, "reading the journal file: "+err.Error())
			}
			scan("journal.db", b)
		} else {
			mj := j.(*MemJournal)
			mj.mu.Lock()
			for _, b := range mj.m {
				scan("the journal", b)
			}
			mj.mu.Unlock()
		}
		_ = round
	}

	e := newEngine()
	reconcile := false
	const maxRounds = 40
	var out Outcome
	settled := false
	for round := 0; round < maxRounds; round++ {
		if reconcile {
			if guard(func() { _ = e.Reconcile(ctx) }) {
				e = newEngine()
				continue
			}
			outputs(e, "reconcile")
			reconcile = false
		}
		var err error
		// A rotation in flight is sometimes continued as the daemon's
		// scheduler does (Advance: a stuck policy stays stuck), otherwise
		// as an operator's rekey rotate -wait.
		call := "rotate"
		if st, _, _ := j.Get(ctx, "pay"); st.Active != nil && h.rng.IntN(4) == 0 {
			call = "advance"
		}
		if guard(func() {
			if call == "advance" {
				out, err = e.Advance(ctx, "pay")
				if err == nil && out.Result == OutcomeCommitted {
					_ = sleepUntil(ctx, time.Now, minTime(out.Next, time.Now().Add(50*time.Millisecond)))
				}
				return
			}
			out, err = e.Rotate(ctx, "pay", RotateOptions{UntilDone: true})
		}) {
			e = newEngine()
			reconcile = true
			continue
		}
		h.trace = append(h.trace, fmt.Sprintf("%s: %s at %s", call, out.Result, out.Step))
		if err != nil {
			scan("the error of Rotate", []byte(err.Error()))
		}
		if out.Err != nil {
			scan("the outcome's error (rotate output)", []byte(out.Err.Error()))
		}
		outputs(e, "rotate")
		if out.Result == "done" && h.budget == 0 {
			settled = true
			break
		}
		if out.Result == "done" {
			continue // rotate again while faults are left
		}
	}
	st, _, err := j.Get(ctx, "pay")
	w := h.w
	w.mu.Lock()
	defer w.mu.Unlock()
	res.violations = append(res.violations, w.violations...)
	res.violations = append(res.violations, leaks...)
	switch {
	case err != nil:
		res.violations = append(res.violations, "reading the journal: "+err.Error())
	case !settled:
		res.violations = append(res.violations, fmt.Sprintf("no rotation completed within %d rounds after faults stopped: last outcome %s at %s (%v); journal %+v", maxRounds, out.Result, out.Step, out.Err, st))
	default:
		if st.Active != nil || st.CurrentKeyID == "" {
			res.violations = append(res.violations, fmt.Sprintf("settled with a rotation in flight: %+v", st))
		}
		if len(w.keys) != 1 || w.keys[st.CurrentKeyID] == nil || !w.keys[st.CurrentKeyID].active {
			ids := make([]string, 0, len(w.keys))
			for id := range w.keys {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			res.violations = append(res.violations, fmt.Sprintf("settled: the provider holds %v, want only the current key %s (an orphan or an unrevoked old key)", ids, st.CurrentKeyID))
		}
		for loc, id := range w.served {
			if id != st.CurrentKeyID {
				res.violations = append(res.violations, fmt.Sprintf("settled: %s serves %s, not the current key %s", loc, id, st.CurrentKeyID))
			}
		}
		for _, d := range h.deps {
			if d.key != st.CurrentKeyID {
				res.violations = append(res.violations, fmt.Sprintf("settled: dependent %s holds %s, not the current key %s", d.name, d.key, st.CurrentKeyID))
			}
		}
	}
	res.trace = append(h.trace, "ledger: "+strings.Join(w.ledger, "; "))
	return res
}

func harnessFirstSeed(t *testing.T) uint64 {
	if *harnessSeed != 0 {
		return *harnessSeed
	}
	if s := os.Getenv("REKEY_HARNESS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("REKEY_HARNESS_SEED: %v", err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestFaultHarness is the randomized fault harness of issue 8: thousands
// of seeded sequences of plugin outcomes (error before effect, effect then
// error, effect then hang until timeout, partial reload, crash before or
// after an effect or at a failpoint, then a new engine over the same
// journal that reconciles) for every plugin call of every step, rollback
// and reconcile included. After every plugin call the ledger is checked:
// the sinks serve a key the provider accepts, no dependent holds a deleted
// or deactivated key, the provider's key limit holds; after every engine
// call no secret canary appears in logs, events, errors, journal bytes or
// status; and every sequence must settle on exactly one key, served and
// held by every dependent.
func TestFaultHarness(t *testing.T) {
	t.Run("random", func(t *testing.T) {
		n := *harnessN
		if n <= 0 {
			n = 2000
			if testing.Short() {
				n = 200
			}
		}
		first := harnessFirstSeed(t)
		stats := &harnessStats{byOp: map[string]int64{}}
		var mu sync.Mutex
		var failed []uint64
		results := map[uint64]seqResult{}
		seeds := make(chan uint64)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seed := range seeds {
					res := runSequence(seqConfig{seed: seed, bolt: seed%16 == 0, stats: stats, shape: harnessShape(seed % uint64(numShapes)), fresh: seed/uint64(numShapes)%4 == 1})
					stats.sequences.Add(1)
					if len(res.violations) > 0 {
						mu.Lock()
						failed = append(failed, seed)
						results[seed] = res
						stats.mu.Lock()
						stats.violations++
						stats.mu.Unlock()
						mu.Unlock()
					}
				}
			}()
		}
		for i := range n {
			seeds <- first + uint64(i)
		}
		close(seeds)
		wg.Wait()
		t.Logf("%s (seeds %d to %d: -harness.seed=%d -harness.n=%d replays this run)", stats.summary(), first, first+uint64(n)-1, first, n)
		sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
		for i, seed := range failed {
			if i == 5 {
				t.Errorf("... and %d more failing sequences", len(failed)-i)
				break
			}
			res := results[seed]
			t.Errorf("sequence with seed %d broke the promise (rerun: go test ./rotator -run 'TestFaultHarness/random' -harness.seed=%d -harness.n=1 -v):\n  %s\n  trace: %s",
				seed, seed, strings.Join(dedupe(res.violations), "\n  "), strings.Join(res.trace, " | "))
		}
		if stats.sequences.Load() != int64(n) || stats.faults[faultHangAfter].Load() == 0 || stats.crashes.Load() == 0 ||
			stats.shapes[shapePlain].Load() == 0 || stats.shapes[shapeNoSoak].Load() == 0 || stats.fresh.Load() == 0 {
			t.Errorf("the harness did not exercise what it claims: %s", stats.summary())
		}
	})
	// Fixed scenarios the random sequences must also cover; each is a
	// failure seen in the field.
	t.Run("hung reload then rollback", func(t *testing.T) {
		// Issue 8, first finding: the reload hook gives the dependents the
		// new key and hangs; rollback restores the sinks and reloads again,
		// which fails before any effect. The dependents still hold the new
		// key: it must not be deleted (nor deactivated).
		stats := &harnessStats{byOp: map[string]int64{}}
		res := runSequence(seqConfig{seed: 1, stats: stats, script: func(op string, n int) faultKind {
			if op == opReload && n == 0 {
				return faultHangAfter
			}
			if op == opReload && n == 1 {
				return faultErrBefore
			}
			return faultNone
		}})
		for _, v := range dedupe(res.violations) {
			t.Error(v)
		}
		if t.Failed() {
			t.Logf("trace: %s", strings.Join(res.trace, " | "))
		}
	})
}

// TestFirstRotationInterrupted: the quickstart's first rotation is
// killed while it verifies (the sinks and the dependents already have the
// new key, and there was no key before). The restart rolls back; with no
// earlier key to prove back in place, the rollback must end (keeping the
// new key, which a dependent may hold) rather than stay pending forever,
// and the next rotation must retire that key once its dependents pass with
// a newer one. Every failpoint from promote on is crashed at, each shape.
func TestFirstRotationInterrupted(t *testing.T) {
	var points []string
	for _, fp := range Failpoints {
		if strings.HasPrefix(fp, "promote.") || strings.HasPrefix(fp, "reload.") || strings.HasPrefix(fp, "verify.") || strings.HasPrefix(fp, "rollback.") {
			points = append(points, fp)
		}
	}
	if len(points) < 4 {
		t.Fatalf("failpoints %v: want promote, reload, verify and rollback points", Failpoints)
	}
	for _, fp := range points {
		for shape := harnessShape(0); shape < numShapes; shape++ {
			t.Run(fp+"/"+shape.String(), func(t *testing.T) {
				stats := &harnessStats{byOp: map[string]int64{}}
				script := func(string, int) faultKind { return faultNone }
				if strings.HasPrefix(fp, "rollback.") {
					// Reach the rollback: the dependents fail the first
					// rotation's verify.
					script = func(op string, n int) faultKind {
						if op == opProbeDep && n < 50 {
							return faultErrBefore
						}
						return faultNone
					}
				}
				res := runSequence(seqConfig{seed: 7, stats: stats, shape: shape, fresh: true, failpoint: fp, script: script})
				for _, v := range dedupe(res.violations) {
					t.Error(v)
				}
				if stats.crashes.Load() == 0 {
					t.Errorf("no crash at %s: the test did not exercise it", fp)
				}
				if t.Failed() {
					t.Logf("trace: %s", strings.Join(res.trace, " | "))
				}
			})
		}
	}
}

// TestFirstRotationRolledBackKeepsKey: the first rotation's reload hook
// gives the dependents the new key and hangs. With no earlier key to go
// back to, the key stays served as the current key, unverified (rolling
// back would serve nothing and strand the dependents that hold it); the
// next rotation replaces it and retires it only after its proof.
func TestFirstRotationRolledBackKeepsKey(t *testing.T) {
	stats := &harnessStats{byOp: map[string]int64{}}
	res := runSequence(seqConfig{seed: 3, stats: stats, fresh: true, script: func(op string, n int) faultKind {
		switch {
		case op == opReload && n == 0:
			return faultHangAfter // the dependents got the new key, then the hook hung
		case op == opReload && n == 1:
			return faultErrBefore // the reload after restoring the sinks fails
		}
		return faultNone
	}})
	for _, v := range dedupe(res.violations) {
		t.Error(v)
	}
	trace := strings.Join(res.trace, " | ")
	if !strings.Contains(trace, "rotate: rolled_back") || !strings.Contains(trace, "rotate: done") {
		t.Errorf("the first rotation should end rolled back (its key kept) and the next one done; trace: %s", trace)
	}
	if t.Failed() {
		t.Logf("trace: %s", trace)
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// TestFaultHarnessDetects shows that the harness's checks can fail: a key
// deleted under the dependents and the sinks is reported for each of them.
func TestFaultHarnessDetects(t *testing.T) {
	h := newHarness(1, &harnessStats{byOp: map[string]int64{}}, false)
	h.w.mu.Lock()
	id := h.deps[0].key
	h.w.keys[id].active = false
	h.w.record("rogue deactivate")
	h.checkLocked("rogue deactivate")
	delete(h.w.keys, id)
	h.w.record("rogue delete")
	h.checkLocked("rogue delete")
	got := strings.Join(h.w.violations, "\n")
	h.w.mu.Unlock()
	for _, want := range []string{
		"dependent app-a holds key " + id + ", which the provider deactivated",
		"dependent app-b holds key " + id + ", which the provider deleted",
		"sink sink:a serves key " + id + " which the provider does not accept",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violation %q not reported; got:\n%s", want, got)
		}
	}
}
