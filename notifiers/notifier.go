// Package notifiers defines the Notifier plugin family: where rekey tells
// people about rotations that need attention (a failure, a stuck policy, a
// rollback, an old key re-activated) or, if they ask, about every success.
// Each kind (webhook, exec) lives in a subpackage that registers itself
// from init.
//
// A policy declares `notify "KIND" { on = [...] ... }` blocks. The loader
// takes the common attribute `on` (DecodeFilter) and gives the rest of the
// body to the kind's Factory. At run time the dispatcher (package
// notifiers/dispatch) turns engine events into Messages, queues them per
// notifier and retries failed deliveries, so that a slow or failing
// notifier never holds up a rotation.
//
// This package does not import the engine (rotator): the loader (policies)
// imports it, and the engine imports the loader.
package notifiers

import (
	"context"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

// Notifier delivers one notification. Notify makes ONE attempt: the
// dispatcher retries with backoff, and stops early on an error marked
// plugin.Permanent (a refused request, a missing key file). It must respect
// ctx and must not put secret material in its errors.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// Message is what a notifier sends: the fields of the engine event it
// reports, under the same JSON names, plus the event name, the host and a
// delivery id. It holds ids, masked key ids and sink versions; never a
// secret value.
type Message struct {
	// ID identifies this notification; it stays the same across retries,
	// so receivers can discard duplicates.
	ID string `json:"id"`
	// Event is the event name (EventFailure, ...).
	Event string `json:"event"`
	// Hostname is the host the daemon runs on.
	Hostname string `json:"hostname"`

	Time       time.Time         `json:"time"`
	Policy     string            `json:"policy"`
	RotationID string            `json:"rotation_id"`
	Generation int64             `json:"generation"`
	Step       string            `json:"step"`
	Result     string            `json:"result"`
	NewKeyID   string            `json:"new_key_id,omitempty"`
	OldKeyID   string            `json:"old_key_id,omitempty"`
	Sinks      map[string]string `json:"sinks,omitempty"`
	Duration   time.Duration     `json:"duration_ns,omitempty"`
	Error      string            `json:"error,omitempty"`
	Manual     bool              `json:"manual,omitempty"`
	// Reason is "compromised" for an emergency rotation, Note the
	// operator's -reason text.
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
	// ExpiresAt is the key's expiry on expiring and expired events.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Labels are the policy's labels.
	Labels map[string]string `json:"labels,omitempty"`
}

// Factory decodes and validates a notify block body (without the common
// attribute `on`). It must not contact the outside world.
type Factory func(env *plugin.Env, body hcl.Body) (Notifier, hcl.Diagnostics)

// Registry holds the notifier kinds, keyed by block label.
var Registry = plugin.NewRegistry[Factory]("notifier")

// Register adds a notifier kind; call it from the kind's init.
func Register(kind string, f Factory) { Registry.Register(kind, f) }
