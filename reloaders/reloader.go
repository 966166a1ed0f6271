// Package reloaders defines the Reloader plugin family: hooks that make
// dependents pick up a newly promoted key (run a command, send a signal,
// POST to a URL). Each kind lives in a subpackage that registers itself
// from init.
package reloaders

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

// Reloader runs one reload hook after promotion.
type Reloader interface {
	Reload(ctx context.Context, rot plugin.Rotation, key plugin.Key) error
}

// Factory decodes and validates a reload block body.
type Factory func(env *plugin.Env, body hcl.Body) (Reloader, hcl.Diagnostics)

// Registry holds the reload kinds, keyed by block label.
var Registry = plugin.NewRegistry[Factory]("reload")

// Register adds a reload kind; call it from the kind's init.
func Register(kind string, f Factory) { Registry.Register(kind, f) }
