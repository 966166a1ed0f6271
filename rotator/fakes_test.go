package rotator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// world is an in-process provider, sink and dependent sharing one ledger.
// It exists to inject what real servers cannot do on demand (a failure at
// an exact call, a crash between two calls), and it checks the invariants
// of docs/protocol.md after every change:
//   - the value a sink serves is a key the provider accepts (active);
//   - the provider never holds more keys than it allows.
type world struct {
	mu         sync.Mutex
	t          testing.TB
	seq        int
	keys       map[string]*fkey // id -> key
	maxKeys    int
	served     map[string]string // sink location -> key id served
	versions   map[string][]fversion
	ledger     []string
	violations []string
	fail       map[string]int // operation -> remaining failures
	failErr    map[string]error
	lastUsed   map[string]time.Time
	committed  map[string]bool // key ids committed (for "revoked only after commit")
	// app is the key a dependent application holds (set by appReload);
	// empty when no test models the application.
	app string
}

type fkey struct {
	id, value, rot string
	active         bool
	created        time.Time
}

type fversion struct {
	keyID, rot string
}

func newWorld(t testing.TB) *world {
	return &world{t: t, keys: map[string]*fkey{}, served: map[string]string{}, versions: map[string][]fversion{},
		fail: map[string]int{}, failErr: map[string]error{}, lastUsed: map[string]time.Time{}, committed: map[string]bool{}}
}

func (w *world) record(format string, args ...any) {
	w.ledger = append(w.ledger, fmt.Sprintf(format, args...))
	for loc, id := range w.served {
		if id == "" {
			continue
		}
		k, ok := w.keys[id]
		if !ok || !k.active {
			w.violations = append(w.violations, fmt.Sprintf("after %q: sink %s serves key %s which the provider does not accept", w.ledger[len(w.ledger)-1], loc, id))
		}
	}
	if w.app != "" {
		if k, ok := w.keys[w.app]; !ok || !k.active {
			w.violations = append(w.violations, fmt.Sprintf("after %q: the application holds key %s which the provider does not accept", w.ledger[len(w.ledger)-1], w.app))
		}
	}
	if w.maxKeys > 0 && len(w.keys) > w.maxKeys {
		w.violations = append(w.violations, fmt.Sprintf("after %q: %d keys, limit %d", w.ledger[len(w.ledger)-1], len(w.keys), w.maxKeys))
	}
}

func (w *world) injected(op string) error {
	if w.fail[op] > 0 {
		w.fail[op]--
		if e := w.failErr[op]; e != nil {
			return e
		}
		return fmt.Errorf("%s: injected failure", op)
	}
	return nil
}

// seed creates a key and serves it from every listed sink, as if an
// operator had set the credential up before rekey.
func (w *world) seed(locs ...string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	id := fmt.Sprintf("KEY%04d", w.seq)
	w.keys[id] = &fkey{id: id, value: "v-" + id, active: true, created: time.Now().Add(-48 * time.Hour)}
	for _, l := range locs {
		w.served[l] = id
		w.versions[l] = append(w.versions[l], fversion{keyID: id})
	}
	w.record("seed %s", id)
	return id
}

func (w *world) check() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		w.t.Error(v)
	}
}

// --- provider ---

type fprov struct {
	w            *world
	usageDelay   time.Duration
	createReturn func() // called after the key exists, before returning
}

func (p *fprov) Target() string { return "fake:provider" }

func (p *fprov) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	w := p.w
	w.mu.Lock()
	if err := w.injected("create"); err != nil {
		w.mu.Unlock()
		return plugin.Key{}, err
	}
	if w.maxKeys > 0 && len(w.keys) >= w.maxKeys {
		w.mu.Unlock()
		return plugin.Key{}, plugin.ErrLimit
	}
	w.seq++
	id := fmt.Sprintf("KEY%04d", w.seq)
	k := &fkey{id: id, value: "v-" + id, rot: rot.ID, active: true, created: time.Now()}
	w.keys[id] = k
	w.record("create %s", id)
	w.mu.Unlock()
	if p.createReturn != nil {
		p.createReturn()
	}
	return plugin.Key{ID: id, Value: secret.Fields{"value": secret.New(k.value)}, CreatedAt: k.created}, nil
}

func (p *fprov) Delete(ctx context.Context, id string) error {
	w := p.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("delete"); err != nil {
		return err
	}
	if _, ok := w.keys[id]; ok {
		delete(w.keys, id)
		w.record("delete %s", id)
	}
	return nil
}

type listingProv struct{ *fprov }

func (p listingProv) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	w := p.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("list"); err != nil {
		return nil, err
	}
	var out []plugin.KeyInfo
	for _, k := range w.keys {
		st := plugin.KeyActive
		if !k.active {
			st = plugin.KeyInactive
		}
		out = append(out, plugin.KeyInfo{ID: k.id, Status: st, CreatedAt: k.created})
	}
	return out, nil
}
func (p listingProv) MaxKeys() int { return p.w.maxKeys }

type fullProv struct{ listingProv }

func (p fullProv) Deactivate(ctx context.Context, id string) error { return p.setActive(id, false) }
func (p fullProv) Activate(ctx context.Context, id string) error   { return p.setActive(id, true) }
func (p fullProv) setActive(id string, on bool) error {
	w := p.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !on {
		if err := w.injected("deactivate"); err != nil {
			return err
		}
	}
	k, ok := w.keys[id]
	if !ok {
		return plugin.ErrNotFound
	}
	k.active = on
	w.record("active %s %v", id, on)
	return nil
}
func (p fullProv) LastUsed(ctx context.Context, id string) (time.Time, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	return p.w.lastUsed[id], nil
}
func (p fullProv) UsageReportingDelay() time.Duration { return p.usageDelay }

// --- sink ---

type fsink struct {
	w   *world
	loc string
}

func (s *fsink) Location() string { return s.loc }

func (s *fsink) Current(ctx context.Context) (sinks.Version, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if err := s.w.injected("current:" + s.loc); err != nil {
		return "", err
	}
	n := len(s.w.versions[s.loc])
	if n == 0 {
		return "", nil
	}
	return sinks.Version(strconv.Itoa(n)), nil
}

func (s *fsink) Stage(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return "", s.w.injected("stage:" + s.loc)
}

func (s *fsink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("promote:" + s.loc); err != nil {
		return "", err
	}
	vs := w.versions[s.loc]
	if n := len(vs); n > 0 && vs[n-1].rot == rot.ID {
		return sinks.Version(strconv.Itoa(n)), nil
	}
	if cur := strconv.Itoa(len(vs)); (st.Prev == "" && len(vs) != 0) || (st.Prev != "" && string(st.Prev) != cur) {
		return "", plugin.ErrConflict
	}
	if key.Value["value"].Reveal() != "v-"+key.ID {
		return "", plugin.Permanent(errors.New("promote without the key value"))
	}
	w.versions[s.loc] = append(vs, fversion{keyID: key.ID, rot: rot.ID})
	w.served[s.loc] = key.ID
	w.record("promote %s %s", s.loc, key.ID)
	return sinks.Version(strconv.Itoa(len(vs) + 1)), nil
}

func (s *fsink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.injected("rollback:" + s.loc); err != nil {
		return err
	}
	vs := w.versions[s.loc]
	n := len(vs)
	if n == 0 || vs[n-1].rot != rot.ID {
		if string(st.Prev) == strconv.Itoa(n) || (st.Prev == "" && n == 0) {
			return nil
		}
		return plugin.ErrConflict
	}
	prev := ""
	if st.Prev != "" {
		i, _ := strconv.Atoi(string(st.Prev))
		prev = vs[i-1].keyID
	}
	w.versions[s.loc] = append(vs, fversion{keyID: prev, rot: "rollback:" + rot.ID})
	w.served[s.loc] = prev
	w.record("restore %s %s", s.loc, prev)
	return nil
}

// --- probes ---

// keyProbe checks that the provider accepts the new key's value.
type keyProbe struct{ w *world }

func (p keyProbe) DefaultTarget() probes.Target { return probes.TargetKey }
func (p keyProbe) Check(ctx context.Context, key plugin.Key) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if err := p.w.injected("probe:key"); err != nil {
		return err
	}
	k, ok := p.w.keys[key.ID]
	if !ok || !k.active || key.Value["value"].Reveal() != k.value {
		return errors.New("key not accepted")
	}
	return nil
}

// depProbe checks that every sink serves a key the provider accepts.
type depProbe struct{ w *world }

func (p depProbe) Check(ctx context.Context, key plugin.Key) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if err := p.w.injected("probe:dep"); err != nil {
		return err
	}
	for loc, id := range p.w.served {
		if k, ok := p.w.keys[id]; !ok || !k.active {
			return fmt.Errorf("dependent reading %s is rejected", loc)
		}
	}
	return nil
}

type freload struct{ w *world }

func (r freload) Reload(ctx context.Context, rot plugin.Rotation, key plugin.Key) error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if err := r.w.injected("reload"); err != nil {
		return err
	}
	r.w.record("reload")
	return nil
}
