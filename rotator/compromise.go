package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
)

// compromise is what an emergency rotation (rekey rotate -compromised)
// carries from Rotate to the rotation it starts or joins.
type compromise struct {
	note  string
	force bool
}

type compromiseKey struct{}

func withCompromise(ctx context.Context, c compromise) context.Context {
	return context.WithValue(ctx, compromiseKey{}, c)
}

// markCompromised marks a new rotation's record as compromised when the
// call that starts it asked for it.
func markCompromised(ctx context.Context, rec *Record) {
	if c, ok := ctx.Value(compromiseKey{}).(compromise); ok {
		rec.Compromised, rec.Note, rec.ForceRevoke = true, c.note, c.force
	}
}

// forcedVerify lets a compromised rotation with ForceRevoke go on to
// commit although the dependents do not pass with the new key: the new
// key is served already, and the old one is being abused. It reports so,
// loudly, and the audit log records it (result forced).
func (r *run) forcedVerify(ctx context.Context, err error) bool {
	if err == nil || !r.rec.ForceRevoke || ctx.Err() != nil || !r.rec.Promoted {
		return false
	}
	r.emit(ctx, StepVerify, ResultForced, 0, fmt.Errorf("the dependents do not pass with the new key; committing anyway because of -force-revoke: %w", err))
	return true
}

// forcedRevokeProof is the revoke step's proof for a compromised rotation
// with ForceRevoke: the dependent probes run once, within their own
// timeouts, and a failure is reported (result forced) but does not hold
// the revocation back.
func (r *run) forcedRevokeProof(ctx context.Context) error {
	pctx := r.probeContext(ctx, StepRevoke)
	for _, pb := range r.p.Probes {
		if pb.Target != probes.TargetDependent {
			continue
		}
		if err := r.runProbe(pctx, pb, r.key); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			old := ""
			if len(r.rec.OldKeyIDs) > 0 {
				old = secret.Mask(r.rec.OldKeyIDs[0])
			}
			r.emit(ctx, StepRevoke, ResultForced, 0, fmt.Errorf("the dependents do not pass with the new key; revoking the compromised old key %s anyway because of -force-revoke: probe %s (%s): %w", old, pb.Kind, posString(pb.DefRange.Filename, pb.DefRange.Start.Line), err))
			return nil
		}
	}
	return nil
}

// CompromiseReport is what rekey rotate -compromised shows for one policy
// after the rotation: the new key, the old keys and whether they are gone.
type CompromiseReport struct {
	NewKey  string   `json:"new_key,omitempty"`
	OldKeys []string `json:"old_keys,omitempty"`
	// RevokedAt is when the old keys were deleted (zero: they are not).
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Forced is set when the old keys were revoked, or the rotation
	// committed, without the dependents' proof (-force-revoke).
	Forced bool `json:"forced,omitempty"`
	// Live is true while a compromised old key may still be accepted by
	// the provider.
	Live bool `json:"live"`
}

// compromiseReport reads the rotation id's record from the journal.
func (e *Engine) compromiseReport(ctx context.Context, policy, id string, forced bool) CompromiseReport {
	st, _, err := e.journal.Get(ctx, policy)
	if err != nil {
		return CompromiseReport{Live: true}
	}
	var rec *Record
	if st.Active != nil && st.Active.ID == id {
		rec = st.Active
	}
	for i := len(st.History) - 1; rec == nil && i >= 0; i-- {
		if st.History[i].ID == id {
			rec = &st.History[i]
		}
	}
	if rec == nil || !rec.Committed() {
		// No rotation committed: the key in use, the one suspected, is
		// still live, whether or not rekey knows its id.
		rep := CompromiseReport{Live: true}
		switch {
		case rec != nil && len(rec.OldKeyIDs) > 0:
			for _, id := range rec.OldKeyIDs {
				rep.OldKeys = append(rep.OldKeys, secret.Mask(id))
			}
		case st.CurrentKeyID != "":
			rep.OldKeys = []string{secret.Mask(st.CurrentKeyID)}
		}
		return rep
	}
	rep := CompromiseReport{RevokedAt: rec.RevokedAt, Forced: forced, NewKey: secret.Mask(rec.NewKeyID)}
	for _, id := range rec.OldKeyIDs {
		rep.OldKeys = append(rep.OldKeys, secret.Mask(id))
	}
	rep.Live = len(rec.OldKeyIDs) > 0 && rec.RevokedAt.IsZero()
	return rep
}

// proveBeforeRevoke is the proof the revoke step requires: the dependents
// pass with the new key (proveNewKeyServed), or, for a compromised
// rotation with ForceRevoke, one reported attempt (forcedRevokeProof).
func (r *run) proveBeforeRevoke(ctx context.Context) error {
	if r.rec.ForceRevoke {
		return r.forcedRevokeProof(ctx)
	}
	return r.proveNewKeyServed(ctx, StepRevoke)
}
