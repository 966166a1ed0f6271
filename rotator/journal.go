package rotator

import (
	"context"
	"errors"
	"time"

	"github.com/rekeyhq/rekey/sinks"
)

// ErrLocked reports that another process holds the state directory.
var ErrLocked = errors.New("state directory is locked by another rekey process")

// Journal is the durable record of each policy's rotations. It holds key
// ids, sink versions, steps and timestamps; never secret values. The
// embedded bbolt store is the default back end; another (a distributed
// store for several instances) must pass the same tests.
type Journal interface {
	// Get returns a policy's state; ok is false when the policy was never
	// seen.
	Get(ctx context.Context, policy string) (st PolicyState, ok bool, err error)
	// Update reads a policy's state, lets fn change it and stores the
	// result in one transaction. If fn returns an error nothing is stored.
	Update(ctx context.Context, policy string, fn func(*PolicyState) error) (PolicyState, error)
	// List returns the state of every policy in the journal.
	List(ctx context.Context) ([]PolicyState, error)
	// Close releases the store and its lock.
	Close() error
}

// PolicyState is what the journal knows about one policy.
type PolicyState struct {
	Policy string `json:"policy"`
	// Generation counts rotations started.
	Generation int64 `json:"generation"`
	// CurrentKeyID is the key the sinks serve since the last commit.
	CurrentKeyID      string    `json:"current_key_id,omitempty"`
	CurrentKeyCreated time.Time `json:"current_key_created,omitzero"`
	// CurrentKeySeen is when rekey first saw the current key (its create
	// returned); the key's age counts from it when the provider reports a
	// creation time in the future.
	CurrentKeySeen time.Time `json:"current_key_first_seen,omitzero"`
	// CurrentKeyExpires is when the current key expires at the provider
	// (zero: never, or unknown).
	CurrentKeyExpires time.Time `json:"current_key_expires,omitzero"`
	// CurrentKeyUnverified marks a current key that no rotation verified:
	// a first rotation failed after a sink served its key, and with nothing
	// before it to go back to, the key was kept (see Record.NoPreviousKey).
	// The policy is due again at once (after the backoff).
	CurrentKeyUnverified bool `json:"current_key_unverified,omitempty"`
	// ExpiryNotified is the smallest expiring threshold already notified
	// for the current key (ExpiredNotified: the key expired and that was
	// notified); both reset when a rotation commits.
	ExpiryNotified  time.Duration `json:"expiry_notified,omitempty"`
	ExpiredNotified bool          `json:"expired_notified,omitempty"`
	// Retired are old keys whose rotation committed but whose deletion has
	// not been confirmed; they are provably rekey's and no longer served.
	Retired []string `json:"retired,omitempty"`

	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastResult  string    `json:"last_result,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	// Failures counts consecutive failed attempts; reset on success.
	Failures int `json:"failures,omitempty"`
	// NotBefore holds back the next automatic attempt (failure backoff).
	NotBefore time.Time `json:"not_before,omitzero"`
	// Stuck stops automatic attempts until an operator rotates by hand.
	Stuck bool `json:"stuck,omitempty"`
	// Alert says why dependents failed after an old key was revoked
	// (revoke.watch); it stays until a later rotation commits.
	Alert string `json:"alert,omitempty"`

	// Active is the rotation in flight, if any.
	Active *Record `json:"active,omitempty"`
	// History holds the last finished rotations, newest last.
	History []Record `json:"history,omitempty"`
}

// Record is the journal entry of one rotation.
type Record struct {
	ID         string    `json:"id"`
	Generation int64     `json:"generation"`
	Manual     bool      `json:"manual,omitempty"`
	Step       Step      `json:"step"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// IntentAt is journaled before the provider is asked for a key, so
	// that an orphan created by a crash can be recognised.
	IntentAt      time.Time `json:"intent_at,omitzero"`
	NewKeyID      string    `json:"new_key_id,omitempty"`
	NewKeyCreated time.Time `json:"new_key_created,omitzero"`
	// NewKeySeen is when the provider's create returned the new key.
	NewKeySeen time.Time `json:"new_key_first_seen,omitzero"`
	// NewKeyExpires is when the new key expires at the provider, if it
	// does.
	NewKeyExpires time.Time `json:"new_key_expires,omitzero"`
	// Compromised marks an emergency rotation (rekey rotate -compromised):
	// no grace period, drain or soak; the old key is revoked as soon as the
	// dependents pass with the new one. Note is the operator's reason.
	Compromised bool   `json:"compromised,omitempty"`
	Note        string `json:"note,omitempty"`
	// ForceRevoke revokes the old key of a compromised rotation even when
	// the dependents do not pass with the new key (-force-revoke).
	ForceRevoke bool `json:"force_revoke,omitempty"`
	// NoPreviousKey is set when no verified key was in use before this
	// rotation: a first rotation (no key found at the provider), or one
	// replacing a key kept unverified (PolicyState.CurrentKeyUnverified).
	NoPreviousKey bool `json:"no_previous_key,omitempty"`
	// OldKeyIDs are the keys this rotation retires after commit.
	OldKeyIDs []string `json:"old_key_ids,omitempty"`
	// Sinks maps each sink location to its versions.
	Sinks map[string]SinkRecord `json:"sinks,omitempty"`
	// Promoted is set once any sink may serve the new key.
	Promoted      bool      `json:"promoted,omitempty"`
	CommittedAt   time.Time `json:"committed_at,omitzero"`
	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	FinishedAt    time.Time `json:"finished_at,omitzero"`
	// Result is set when the rotation ends: done, rolled_back or failed.
	Result string `json:"result,omitempty"`
	// Announced is the step whose wait was last reported, so that a wait
	// looked at again is not reported twice.
	Announced Step `json:"announced,omitempty"`
	// Interrupted is set when the rotation was stopped from outside (a
	// crash, SIGTERM, Ctrl-C): its rollback is not a failure of the
	// rotation and does not count toward max_failures.
	Interrupted bool   `json:"interrupted,omitempty"`
	Error       string `json:"error,omitempty"`
}

// SinkRecord is the journaled state of one sink in one rotation.
type SinkRecord struct {
	// PrevRead is true once Prev holds the version read before any change.
	PrevRead bool `json:"prev_read"`
	sinks.State
}

// Committed reports whether the record passed the point of no return.
func (r *Record) Committed() bool { return !r.CommittedAt.IsZero() }

const historyLimit = 20

func (s *PolicyState) finish(r Record) {
	s.History = append(s.History, r)
	if len(s.History) > historyLimit {
		s.History = append([]Record(nil), s.History[len(s.History)-historyLimit:]...)
	}
	s.Active = nil
}
