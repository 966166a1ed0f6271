package notifiers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// Event names, the values of a notify block's `on` list.
const (
	// EventSuccess: a rotation completed (the old key is revoked).
	EventSuccess = "success"
	// EventFailure: a step failed.
	EventFailure = "failure"
	// EventRolledBack: a rotation failed before commit and was undone;
	// dependents kept the old key.
	EventRolledBack = "rolled_back"
	// EventStuck: the policy spent its failure budget and waits for an
	// operator (`rekey rotate NAME`).
	EventStuck = "stuck"
	// EventRevokePending: the rotation is committed and waits (grace
	// period, old key still in use) before the old key is revoked.
	EventRevokePending = "revoke_pending"
	// EventWatchFailed: dependents failed after the old key was revoked
	// (revoke.watch). Revocation cannot be undone: the loudest alert.
	EventWatchFailed = "watch_failed"
	// EventReactivated: dependents failed during soak and the old key
	// was re-activated: something still uses it.
	EventReactivated = "reactivated"
	// EventExpiring: the current key expires within one of the policy's
	// expiry_notify thresholds and rotations keep failing.
	EventExpiring = "expiring"
	// EventExpired: the current key expired at its provider before a
	// rotation replaced it: dependents that still use it fail.
	EventExpired = "expired"
	// EventCompromised: a step of a compromised rotation (rekey rotate
	// -compromised) finished or failed; Reason and Note say why.
	EventCompromised = "compromised"
)

// Events lists every event name.
var Events = []string{EventSuccess, EventFailure, EventRolledBack, EventStuck, EventRevokePending, EventReactivated, EventWatchFailed, EventExpiring, EventExpired, EventCompromised}

// DefaultEvents are notified when a notify block has no `on` attribute:
// everything that needs a person's attention.
var DefaultEvents = []string{EventFailure, EventRolledBack, EventStuck, EventReactivated, EventWatchFailed, EventExpiring, EventExpired, EventCompromised}

// CommonSchema is the part of every notify block that the loader decodes
// itself (with DecodeFilter) before passing the rest of the body to the
// kind's Factory.
var CommonSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "on"}}}

// Filter is the set of event names a notifier wants.
type Filter struct {
	events []string
}

// NewFilter returns a filter for the given event names, or an error naming
// an unknown one. An empty list selects nothing.
func NewFilter(names ...string) (Filter, error) {
	var f Filter
	for _, n := range names {
		if !slices.Contains(Events, n) {
			return Filter{}, fmt.Errorf("unknown event %q; known events: %s", n, strings.Join(Events, ", "))
		}
		if !slices.Contains(f.events, n) {
			f.events = append(f.events, n)
		}
	}
	return f, nil
}

// DefaultFilter selects DefaultEvents.
func DefaultFilter() Filter {
	f, _ := NewFilter(DefaultEvents...)
	return f
}

// Match reports whether the filter selects the event name.
func (f Filter) Match(event string) bool { return slices.Contains(f.events, event) }

// Events returns the selected names in the order given.
func (f Filter) Events() []string { return slices.Clone(f.events) }

// DecodeFilter decodes the `on` attribute of a notify block. A nil attr
// (the attribute is absent) yields DefaultFilter.
func DecodeFilter(attr *hcl.Attribute, ctx *hcl.EvalContext) (Filter, hcl.Diagnostics) {
	if attr == nil {
		return DefaultFilter(), nil
	}
	var names []string
	if diags := gohcl.DecodeExpression(attr.Expr, ctx, &names); diags.HasErrors() {
		return Filter{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid notify events",
			Detail:   fmt.Sprintf("on must be a list of event names, such as [\"failure\", \"stuck\"]. Known events: %s.", strings.Join(Events, ", ")),
			Subject:  attr.Expr.Range().Ptr(),
		}}
	}
	if len(names) == 0 {
		return Filter{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No notify events",
			Detail:   fmt.Sprintf("on is empty, so this notifier would never be used. List the events to notify, such as [\"failure\", \"stuck\"], or remove on for the default (%s).", strings.Join(DefaultEvents, ", ")),
			Subject:  attr.Expr.Range().Ptr(),
		}}
	}
	f, err := NewFilter(names...)
	if err != nil {
		return Filter{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown notify event",
			Detail:   err.Error() + ".",
			Subject:  attr.Expr.Range().Ptr(),
		}}
	}
	return f, nil
}
