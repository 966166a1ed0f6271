package rotator

import (
	"context"
	"time"
)

// Step names a stage of the rotation protocol (docs/protocol.md).
type Step string

// The steps of a rotation, in order, and the terminal states.
const (
	StepDue        Step = "due"
	StepCreate     Step = "create"
	StepStage      Step = "stage"
	StepTest       Step = "test"
	StepPromote    Step = "promote"
	StepReload     Step = "reload"
	StepVerify     Step = "verify"
	StepCommit     Step = "commit"
	StepDrain      Step = "drain"
	StepDeactivate Step = "deactivate"
	StepSoak       Step = "soak"
	StepRevoke     Step = "revoke"
	StepWatch      Step = "watch"
	// StepExpiry is the step of expiring and expired events, which belong
	// to no rotation.
	StepExpiry     Step = "expiry"
	StepDone       Step = "done"
	StepRollback   Step = "rollback"
	StepRolledBack Step = "rolled_back"
	StepFailed     Step = "failed"
)

// Result is the outcome reported with an event.
type Result string

// Results of a step transition.
const (
	ResultStarted    Result = "started"
	ResultOK         Result = "ok"
	ResultFailed     Result = "failed"
	ResultRolledBack Result = "rolled_back"
	ResultStuck      Result = "stuck"
	ResultWaiting    Result = "waiting"
	// ResultReactivated: dependents failed during soak and the old key was
	// re-activated.
	ResultReactivated Result = "reactivated"
	// ResultForced: a compromised rotation went on without the
	// dependents' proof, because the operator said -force-revoke.
	ResultForced Result = "forced"
	// ResultExpiring: the current key expires soon and no rotation has
	// replaced it (StepExpiry).
	ResultExpiring Result = "expiring"
	// ResultExpired: the current key expired at the provider before a
	// rotation replaced it (StepExpiry): the loudest state.
	ResultExpired Result = "expired"
)

// ReasonCompromised is the Reason of the events of a compromised rotation.
const ReasonCompromised = "compromised"

// Event is one step transition of one rotation. It carries ids, masked key
// ids and sink versions; never secret values. It is the record written to
// the audit log, sent to notifiers and counted by metrics.
type Event struct {
	Time       time.Time         `json:"time"`
	Policy     string            `json:"policy"`
	RotationID string            `json:"rotation_id"`
	Generation int64             `json:"generation"`
	Step       Step              `json:"step"`
	Result     Result            `json:"result"`
	NewKeyID   string            `json:"new_key_id,omitempty"` // masked
	OldKeyID   string            `json:"old_key_id,omitempty"` // masked
	Sinks      map[string]string `json:"sinks,omitempty"`      // location -> version
	Duration   time.Duration     `json:"duration_ns,omitempty"`
	Error      string            `json:"error,omitempty"`
	// Manual is true for rotations started by an operator.
	Manual bool `json:"manual,omitempty"`
	// Reason is "compromised" for an emergency rotation (rekey rotate
	// -compromised), and Note the operator's -reason text.
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
	// ExpiresAt is the current key's expiry, on expiring and expired
	// events.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Labels are the policy's labels (never a key id or a secret).
	Labels map[string]string `json:"labels,omitempty"`
}

// Observer receives every event. Observe must not block the rotation: an
// observer that does slow work (webhooks) queues it and returns.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }
