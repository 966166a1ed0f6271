// Package providers defines the Provider plugin family: the systems where
// keys are created and revoked (AWS IAM, databases, API gateways, ...).
// Each kind lives in a subpackage that registers itself from init.
//
// A provider implements the small Provider interface; further abilities are
// optional interfaces that the engine checks for, so a simple kind stays
// simple.
package providers

import (
	"context"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

// Provider creates and deletes the keys of one credential.
type Provider interface {
	// Target is a stable, non-secret identifier of the credential managed,
	// such as "aws_iam:prod:svc-payments". Two policies may not share one.
	Target() string
	// Create makes a new key. Where the provider can, creating twice with
	// the same rotation returns the key created the first time, or makes
	// the key findable by rot.ID (see Lister) so that an orphan left by a
	// crash can be found and removed.
	Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error)
	// Delete removes a key for good. Deleting a key that does not exist
	// returns nil.
	Delete(ctx context.Context, keyID string) error
}

// Lister is implemented by providers that can list the keys of their
// credential. The engine uses it for the capacity check, to adopt the key
// in use at the first rotation, and to find orphans after a crash.
type Lister interface {
	List(ctx context.Context) ([]plugin.KeyInfo, error)
}

// Capacity is implemented by providers with a limit on keys per credential
// (IAM: 2, inactive keys included).
type Capacity interface {
	MaxKeys() int
}

// Deactivator is implemented by providers that can disable a key without
// deleting it (IAM Inactive, database NOLOGIN), so that a soak period can
// run and a still-used old key can be re-activated at once.
type Deactivator interface {
	Deactivate(ctx context.Context, keyID string) error
	Activate(ctx context.Context, keyID string) error
}

// UsageReporter is implemented by providers that can tell when a key was
// last used, so that revocation can wait until the old key is idle.
type UsageReporter interface {
	// LastUsed returns when the key was last used; zero means never.
	LastUsed(ctx context.Context, keyID string) (time.Time, error)
	// UsageReportingDelay is how late the provider may record a use; the
	// engine treats a key as idle only once this long has passed since
	// commit with no use recorded after the commit.
	UsageReportingDelay() time.Duration
}

// Propagator is implemented by providers whose deactivations and
// deletions take effect late (IAM is eventually consistent: a deactivated
// access key may keep working for a while). The engine counts no soak probe
// as evidence that dependents do without the old key until this long after
// the deactivation.
type Propagator interface {
	// PropagationDelay is how long a deactivate or delete may take to take
	// effect.
	PropagationDelay() time.Duration
}

// Factory decodes and validates a provider block body.
type Factory func(env *plugin.Env, body hcl.Body) (Provider, hcl.Diagnostics)

// Registry holds the provider kinds, keyed by block label.
var Registry = plugin.NewRegistry[Factory]("provider")

// Register adds a provider kind; call it from the kind's init.
func Register(kind string, f Factory) { Registry.Register(kind, f) }

// InPlace is implemented by providers that hold one key at a time: creating
// a key replaces the previous one at once (a database role's password
// changed in place), so a dependent holding the old key fails at its next
// use. The loader warns about such a policy unless a reload hook and a
// dependent probe show that dependents move to the new key.
type InPlace interface {
	SingleKey() bool
}

// IsInPlace reports whether p replaces its key in place (InPlace).
func IsInPlace(p Provider) bool {
	s, ok := p.(InPlace)
	return ok && s.SingleKey()
}
