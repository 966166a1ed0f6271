package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// Recovery is what `rekey journal recover` would write for one policy,
// and why: the state to adopt and a line per decision for the operator.
type Recovery struct {
	Policy string
	// State is the journal entry to write; nil when nothing is adopted.
	State *rotator.PolicyState
	// Notes explain each decision, for the operator to check before -yes.
	Notes []string
}

// auditRotation is what the audit log says about one rotation.
type auditRotation struct {
	id          string
	generation  int64
	newKey      string // masked
	oldKey      string // masked
	committed   bool
	done        bool
	rolledBack  bool
	lastStep    rotator.Step
	lastAt      time.Time
	lastOutcome rotator.Result
}

// ReadAudit reads the audit log's records; a torn or foreign line is
// skipped and counted.
func ReadAudit(r io.Reader) (recs []audit.Record, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Policy == "" || rec.RotationID == "" {
			skipped++
			continue
		}
		recs = append(recs, rec)
	}
	return recs, skipped, sc.Err()
}

// lastRotation returns the policy's rotation with the highest generation
// in the audit records, and that generation.
func lastRotation(policy string, recs []audit.Record) (*auditRotation, bool) {
	var last *auditRotation
	for _, r := range recs {
		if r.Policy != policy {
			continue
		}
		if last == nil || r.Generation > last.generation || r.Generation == last.generation && r.RotationID != last.id && r.Time.After(last.lastAt) {
			last = &auditRotation{id: r.RotationID, generation: r.Generation}
		}
		if r.RotationID != last.id {
			continue
		}
		if r.NewKeyID != "" {
			last.newKey = r.NewKeyID
		}
		if r.OldKeyID != "" {
			last.oldKey = r.OldKeyID
		}
		switch {
		case r.Step == rotator.StepCommit && r.Result == rotator.ResultOK:
			last.committed = true
		case r.Step == rotator.StepDone && r.Result == rotator.ResultOK:
			last.done, last.committed = true, true
		case r.Step == rotator.StepRolledBack:
			last.rolledBack = true
		}
		last.lastStep, last.lastAt, last.lastOutcome = r.Step, r.Time, r.Result
	}
	return last, last != nil
}

// match returns the listed key the audit names (by the rotation id the
// provider tagged it with, else by its masked id), if exactly one fits.
func match(keys []plugin.KeyInfo, masked, rotationID string) (plugin.KeyInfo, bool) {
	var found []plugin.KeyInfo
	for _, k := range keys {
		if rotationID != "" && k.RotationID == rotationID {
			return k, true
		}
		if masked != "" && secret.Mask(k.ID) == masked {
			found = append(found, k)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return plugin.KeyInfo{}, false
}

// Rebuild decides, from the keys a policy's provider lists and from the
// audit log, what to adopt for one policy. It adopts only what the
// evidence proves: the key the last committed rotation made current, the
// old key of a committed rotation as retired (revoked at the next
// rotation), or the only key listed when the audit log knows no rotation.
// A key created by a rotation that did not commit, and any key the audit
// does not explain, is left alone and reported. keys is nil when the
// provider cannot list its keys.
func Rebuild(policy string, keys []plugin.KeyInfo, canList bool, recs []audit.Record, now time.Time) Recovery {
	rc := Recovery{Policy: policy}
	st := &rotator.PolicyState{Policy: policy, LastAttempt: now,
		LastError: fmt.Sprintf("journal rebuilt by rekey journal recover at %s", now.UTC().Format(time.RFC3339))}
	last, ok := lastRotation(policy, recs)
	if ok {
		st.Generation = last.generation
	}
	note := func(f string, a ...any) { rc.Notes = append(rc.Notes, fmt.Sprintf(f, a...)) }
	if !canList {
		if ok {
			note("the provider cannot list its keys: rekey cannot find the keys of earlier rotations (audit: rotation %s, generation %d, new key %s, old key %s, last step %s %s); check them at the provider and revoke by hand any key no sink serves",
				last.id, last.generation, orDash(last.newKey), orDash(last.oldKey), last.lastStep, last.lastOutcome)
		} else {
			note("the provider cannot list its keys and the audit log has no rotation: nothing to adopt; the policy starts as if new")
		}
		rc.State = st
		return rc
	}
	used := map[string]bool{}
	adoptCurrent := func(k plugin.KeyInfo, why string) {
		st.CurrentKeyID, st.CurrentKeyCreated, st.CurrentKeyExpires = k.ID, k.CreatedAt, k.ExpiresAt
		used[k.ID] = true
		expires := ""
		if !k.ExpiresAt.IsZero() {
			expires = ", expires " + k.ExpiresAt.UTC().Format(time.RFC3339)
		}
		note("adopt %s (created %s%s) as the current key: %s", secret.Mask(k.ID), k.CreatedAt.UTC().Format(time.RFC3339), expires, why)
	}
	switch {
	case !ok && len(keys) == 1:
		adoptCurrent(keys[0], "the only key at the provider, and the audit log has no rotation of this policy")
	case !ok:
		note("the audit log has no rotation of this policy and the provider lists %d keys: none is adopted", len(keys))
	case last.committed:
		if k, found := match(keys, last.newKey, last.id); found {
			adoptCurrent(k, fmt.Sprintf("rotation %s (generation %d) committed it", last.id, last.generation))
			st.LastResult, st.LastSuccess = "done", last.lastAt
			if !last.done {
				st.LastResult = "committed"
			}
		} else {
			note("rotation %s (generation %d) committed new key %s, which the provider no longer lists: nothing adopted as current", last.id, last.generation, orDash(last.newKey))
		}
		if k, found := match(keys, last.oldKey, ""); found && !used[k.ID] {
			st.Retired = append(st.Retired, k.ID)
			used[k.ID] = true
			note("adopt %s as retired: the old key of committed rotation %s, no longer served; rekey deletes it when the next rotation needs room", secret.Mask(k.ID), last.id)
		}
	default:
		if k, found := match(keys, last.oldKey, ""); found {
			adoptCurrent(k, fmt.Sprintf("rotation %s (generation %d) did not commit, so the sinks serve the old key", last.id, last.generation))
		}
		st.LastResult = string(rotator.StepRolledBack)
		if !last.rolledBack {
			note("rotation %s stopped at step %s (%s) before commit: its rollback may not have finished; check that every sink serves the current key", last.id, last.lastStep, last.lastOutcome)
		}
		if k, found := match(keys, last.newKey, last.id); found {
			used[k.ID] = true
			note("leave %s alone: rotation %s created it and did not commit; a sink or dependent may hold it (unknown outcome): delete it by hand once no sink serves it", secret.Mask(k.ID), last.id)
		}
	}
	for _, k := range keys {
		if !used[k.ID] {
			note("leave %s alone: the audit log does not explain it", secret.Mask(k.ID))
		}
	}
	rc.State = st
	return rc
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// PlanRecovery lists each configured policy's keys at its provider and
// reads the audit log, and returns what Rebuild decides for each policy.
func PlanRecovery(ctx context.Context, cfg *policies.Config, auditPath string, now time.Time) ([]Recovery, error) {
	var recs []audit.Record
	f, err := os.Open(auditPath)
	switch {
	case err == nil:
		recs, _, err = ReadAudit(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	var out []Recovery
	for _, p := range cfg.Policies {
		var keys []plugin.KeyInfo
		l, canList := providers.AsLister(p.Provider.Provider)
		if canList {
			lctx, cancel := context.WithTimeout(ctx, max(p.StepTimeout, 30*time.Second))
			keys, err = l.List(lctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("policy %s: listing keys at the provider: %w", p.Name, err)
			}
		}
		out = append(out, Rebuild(p.Name, keys, canList, recs, now))
	}
	return out, nil
}
