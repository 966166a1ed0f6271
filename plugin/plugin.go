// Package plugin holds what every plugin family shares: the key and
// rotation types passed to plugins, the decoding environment a plugin's
// factory receives, the registry type each family keeps, connections, and
// the error conventions the engine branches on.
package plugin

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/secret"
)

// Rotation identifies one attempt to replace a policy's key. ID is unique
// and is used as the idempotency token at every plugin that has the notion
// (Secrets Manager ClientRequestToken, names of keys created by exec, ...).
type Rotation struct {
	ID         string
	Policy     string
	Generation int64
	StartedAt  time.Time
	// KeyTTL, when not zero, is the lifetime the policy asks new keys to
	// be created with (`key_ttl`), where the system lets rekey choose: a
	// key rekey loses track of still dies by itself.
	KeyTTL time.Duration
}

// Key is a credential at a provider: a non-secret ID and a secret Value.
// Value is empty for keys that were listed rather than created, and for
// keys whose rotation resumed after a restart (values never touch disk).
type Key struct {
	ID        string
	Value     secret.Fields
	CreatedAt time.Time
	// ExpiresAt is when the system stops accepting the key by itself (a
	// TTL), where it has the notion; zero if the key does not expire.
	ExpiresAt time.Time
}

// KeyStatus is the state of a key at its provider.
type KeyStatus string

// Key states reported by providers that can list keys.
const (
	KeyActive   KeyStatus = "active"
	KeyInactive KeyStatus = "inactive"
)

// KeyInfo describes an existing key without its value.
type KeyInfo struct {
	ID        string
	Status    KeyStatus
	CreatedAt time.Time
	// RotationID is the rotation that created the key, where the provider
	// can tell (a deterministic name or tag); empty otherwise.
	RotationID string
	// ExpiresAt is when the key expires at the provider; zero if never or
	// unknown.
	ExpiresAt time.Time
}

// Errors that the engine branches on. Plugins wrap them with context.
var (
	// ErrNotFound reports that a key or location does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a sink location was changed by a writer
	// outside this rotation (a failed check-and-set).
	ErrConflict = errors.New("changed by another writer")
	// ErrLimit reports that the provider refuses another key.
	ErrLimit = errors.New("provider key limit reached")
	// ErrNoEffect reports that a call failed without any effect: nothing
	// was created, written, applied or deleted. Wrap it (see NoEffect) only
	// where the plugin knows this for sure, e.g. a request refused before
	// anything was sent or a command that could not be started. The engine
	// treats every other error, every timeout and every crash as an
	// unknown outcome: the call may have taken effect.
	ErrNoEffect = errors.New("failed with no effect")
)

// noEffect marks an error as ErrNoEffect while keeping its chain.
type noEffect struct{ err error }

func (n noEffect) Error() string   { return n.err.Error() }
func (n noEffect) Unwrap() []error { return []error{n.err, ErrNoEffect} }

// NoEffect marks err as a failure that had no effect at all (ErrNoEffect);
// errors.Is still finds what err wraps. Only a plugin that is sure nothing
// happened may say so.
func NoEffect(err error) error {
	if err == nil {
		return nil
	}
	return noEffect{err}
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the engine stops the step at
// once instead of backing off until the step timeout. Configuration errors,
// refused credentials and conflicts are permanent; timeouts, 5xx, throttling
// and network errors are not.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent, or is ErrConflict or ErrLimit.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, ErrConflict) || errors.Is(err, ErrLimit)
}

// Registry maps the HCL block label of a plugin kind to its factory. Each
// family (providers, sinks, probes, reloaders) keeps one; kinds register
// themselves from init.
type Registry[F any] struct {
	family string
	mu     sync.RWMutex
	kinds  map[string]F
}

// NewRegistry returns an empty registry for the named family.
func NewRegistry[F any](family string) *Registry[F] {
	return &Registry[F]{family: family, kinds: map[string]F{}}
}

// Register adds a kind. Registering a kind twice is a programming error and
// panics.
func (r *Registry[F]) Register(kind string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[kind]; dup {
		panic(fmt.Sprintf("%s kind %q registered twice", r.family, kind))
	}
	r.kinds[kind] = f
}

// Lookup returns the factory of a kind.
func (r *Registry[F]) Lookup(kind string) (F, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.kinds[kind]
	return f, ok
}

// Kinds returns the registered kinds in sorted order.
func (r *Registry[F]) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ks := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Family returns the family name, e.g. "provider".
func (r *Registry[F]) Family() string { return r.family }
