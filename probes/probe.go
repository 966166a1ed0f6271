// Package probes defines the Probe plugin family: live checks that a new key
// works (it can log in) and that dependents work with it (their health
// endpoints, a synthetic request). Each kind lives in a subpackage that
// registers itself from init.
//
// Retries, timeouts and required consecutive successes are common to every
// probe and handled by the engine, from the probe block's `target`,
// `timeout`, `interval` and `successes` attributes; a Probe performs one
// attempt.
package probes

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

// Target says what a probe checks, and so when it runs.
type Target string

const (
	// TargetKey probes test the new key itself; they run at the test step,
	// before any dependent is served the key.
	TargetKey Target = "key"
	// TargetDependent probes test that dependents work; they run at the
	// verify step, after promotion, and keep running through the soak.
	TargetDependent Target = "dependent"
)

// Probe performs one check.
type Probe interface {
	// Check returns nil when the check passed. key carries the new key; its
	// Value may be empty for dependent probes after a restart.
	Check(ctx context.Context, key plugin.Key) error
}

// Targeter is implemented by probes whose natural target is not the
// dependent (aws_sts, vault_login test the key itself).
type Targeter interface {
	DefaultTarget() Target
}

// Describer is implemented by probes that can say in one line what they
// measure (a query and its condition), for plan.
type Describer interface {
	Describe() string
}

// Factory decodes and validates a probe block body (without the common
// attributes, which the policy loader takes first).
type Factory func(env *plugin.Env, body hcl.Body) (Probe, hcl.Diagnostics)

// Registry holds the probe kinds, keyed by block label.
var Registry = plugin.NewRegistry[Factory]("probe")

// Register adds a probe kind; call it from the kind's init.
func Register(kind string, f Factory) { Registry.Register(kind, f) }
