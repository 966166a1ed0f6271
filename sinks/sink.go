// Package sinks defines the Sink plugin family: the places dependents read
// their keys from (Vault KV, AWS Secrets Manager, files, ...). Each kind
// lives in a subpackage that registers itself from init.
package sinks

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

// Version is an opaque, non-secret marker of what a sink location holds
// (a Vault KV version number, a Secrets Manager version id, ...). It is
// journaled so that a rollback after a crash can restore it. The empty
// Version means the location did not exist.
type Version string

// State is what the journal knows about one sink in one rotation.
type State struct {
	// Prev is the version that was current before the rotation.
	Prev Version
	// Staged is what Stage returned, if it ran.
	Staged Version
	// Promoted is what Promote returned, if it ran.
	Promoted Version
}

// Sink writes a policy's key to one location.
//
// Every method must be idempotent: called again with the same rotation after
// success, or after a crash that happened after its effect but before the
// engine journaled its result, it changes nothing more.
type Sink interface {
	// Location is a stable, non-secret name of the location written, such
	// as "vault_kv:main:secret/payments/aws". Two policies may not share one.
	Location() string
	// Current returns the version served now, before the rotation changes
	// anything. Check-and-set writes are made against it.
	Current(ctx context.Context) (Version, error)
	// Stage writes the new value as pending where the sink has the notion
	// (Secrets Manager AWSPENDING); dependents must not be served it yet.
	// A sink without the notion returns "" and does nothing.
	Stage(ctx context.Context, rot plugin.Rotation, key plugin.Key, st State) (Version, error)
	// Promote makes the new value the one served, with check-and-set
	// against st.Prev (a writer outside rekey yields plugin.ErrConflict),
	// then reads it back and compares. It returns the version now current.
	Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st State) (Version, error)
	// Rollback restores st.Prev as the served version and removes whatever
	// this rotation staged. st.Staged and st.Promoted may be empty when a
	// crash came before they were journaled: the sink recognises its own
	// writes by rot.ID. If the location was changed by another writer since,
	// it returns plugin.ErrConflict and changes nothing. History is never
	// deleted.
	Rollback(ctx context.Context, rot plugin.Rotation, st State) error
}

// Finisher is implemented by sinks that keep bookkeeping for a rotation
// until it ends (the kubernetes_secret sink keeps the previous value in a
// companion Secret for rollback). The engine calls Finish once the rotation
// is committed or rolled back; an error is logged and retried at the next
// rotation, never fatal.
type Finisher interface {
	Finish(ctx context.Context, rot plugin.Rotation) error
}

// Factory decodes and validates a sink block body.
type Factory func(env *plugin.Env, body hcl.Body) (Sink, hcl.Diagnostics)

// Registry holds the sink kinds, keyed by block label.
var Registry = plugin.NewRegistry[Factory]("sink")

// Register adds a sink kind; call it from the kind's init.
func Register(kind string, f Factory) { Registry.Register(kind, f) }
