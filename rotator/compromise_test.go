package rotator

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// TestCompromisedJoinsARotationParkedInDrain: a rotation committed and
// waiting out a day of grace is joined by a compromised rotate, which
// revokes the old key at once (no drain, no soak), with the note on every
// later event; the report names the keys and the revocation.
func TestCompromisedJoinsARotationParkedInDrain(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: 24 * time.Hour, Soak: time.Hour}
	e := f.engine(t, nil)
	out, err := e.Rotate(ctx, "pay", RotateOptions{})
	if err != nil || out.Result != OutcomeCommitted || out.Step != StepDrain {
		t.Fatalf("first rotate: %s at %s, %v", out.Result, out.Step, err)
	}
	*f.evs = nil
	out, err = e.Rotate(ctx, "pay", RotateOptions{Compromised: true, Note: "leaked"})
	if err != nil || out.Result != OutcomeDone || !out.Joined {
		t.Fatalf("compromised rotate: %s at %s joined %v: %v %v", out.Result, out.Step, out.Joined, out.Err, err)
	}
	if _, ok := w.keys[old]; ok {
		t.Fatal("the old key is still at the provider")
	}
	rep := out.Compromise
	if rep == nil || rep.Live || rep.RevokedAt.IsZero() || rep.Forced || len(rep.OldKeys) != 1 || rep.NewKey == "" {
		t.Fatalf("report %+v", rep)
	}
	for _, ev := range *f.evs {
		if ev.Step == StepSoak || ev.Step == StepDeactivate || (ev.Step == StepDrain && ev.Result == ResultWaiting) {
			t.Errorf("a compromised rotation went through %s: %+v", ev.Step, ev)
		}
		if ev.Reason != ReasonCompromised || ev.Note != "leaked" {
			t.Errorf("event without the compromise reason: %+v", ev)
		}
	}
	w.check()
}

// TestCompromisedKeepsTheOldKeyWithoutProof: after the commit the
// dependents fail with the new key; the compromised rotation does not
// revoke, the policy is stuck and the report says the old key is live.
// With ForceRevoke the old key goes, and the report says it was forced.
func TestCompromisedKeepsTheOldKeyWithoutProof(t *testing.T) {
	ctx := context.Background()
	for _, force := range []bool{false, true} {
		w := newWorld(t)
		w.maxKeys = 2
		old := w.seed("sink:a", "sink:b")
		f := newFixture(t, fullProvider(w))
		f.p.Revoke = policies.Revoke{After: 24 * time.Hour}
		e := f.engine(t, nil)
		out, err := e.Rotate(ctx, "pay", RotateOptions{})
		if err != nil || out.Result != OutcomeCommitted {
			t.Fatalf("first rotate: %s, %v", out.Result, err)
		}
		w.mu.Lock()
		w.fail["probe:dep"] = 1000
		w.mu.Unlock()
		out, err = e.Rotate(ctx, "pay", RotateOptions{Compromised: true, ForceRevoke: force})
		if err != nil {
			t.Fatal(err)
		}
		_, alive := w.keys[old]
		rep := out.Compromise
		switch {
		case rep == nil:
			t.Fatal("no report")
		case !force && (!alive || !rep.Live || out.Result != OutcomeStuck || !f.state(t).Stuck):
			t.Fatalf("without proof: alive %v, report %+v, %s", alive, rep, out.Result)
		case force && (alive || rep.Live || !rep.Forced || rep.RevokedAt.IsZero()):
			t.Fatalf("forced: alive %v, report %+v, %s: %v", alive, rep, out.Result, out.Err)
		}
		forced := false
		for _, ev := range *f.evs {
			forced = forced || (ev.Step == StepRevoke && ev.Result == ResultForced)
		}
		if forced != force {
			t.Errorf("force %v: forced revoke event %v", force, forced)
		}
	}
}

// TestCompromisedReportWhenNothingCommitted: a compromised rotation that
// cannot even start (the provider refuses a key) reports the key in use as
// still live, never "nothing to revoke".
func TestCompromisedReportWhenNothingCommitted(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	w.mu.Lock()
	w.fail["create"] = 1000
	w.mu.Unlock()
	e := f.engine(t, nil)
	out, err := e.Rotate(ctx, "pay", RotateOptions{Compromised: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.Compromise == nil || !out.Compromise.Live || out.Compromise.NewKey != "" {
		t.Fatalf("%s: report %+v", out.Result, out.Compromise)
	}
}
