package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// failingAudit fails every write for which fail returns true and keeps
// the events it recorded.
type failingAudit struct {
	mu   sync.Mutex
	fail func(Event) bool
	got  []Event
}

func (a *failingAudit) Record(_ context.Context, e Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail(e) {
		return errors.New("write audit.log: no space left on device")
	}
	a.got = append(a.got, e)
	return nil
}

func auditEngine(t *testing.T, f *fixture, a *failingAudit) *Engine {
	t.Helper()
	e, err := New(Options{Journal: f.j, Audit: a, RecheckInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies([]*policies.Policy{f.p})
	return e
}

// TestFailedAuditWriteStopsBeforeIrreversibleSteps: with the audit log
// failing before commit, the rotation rolls back instead of committing;
// failing after commit, the old key is neither deactivated nor deleted
// until the audit log works again.
func TestFailedAuditWriteStopsBeforeIrreversibleSteps(t *testing.T) {
	t.Run("before commit", func(t *testing.T) {
		w := newWorld(t)
		w.maxKeys = 2
		old := w.seed("sink:a", "sink:b")
		f := newFixture(t, fullProvider(w))
		a := &failingAudit{fail: func(e Event) bool { return e.Step == StepCreate && e.Result == ResultStarted }}
		out, err := auditEngine(t, f, a).Rotate(context.Background(), "pay", RotateOptions{})
		if err != nil || out.Result != OutcomeRolledBack || !errors.Is(out.Err, ErrAudit) || !strings.Contains(out.Err.Error(), "before commit") {
			t.Fatalf("Rotate = %+v, %v", out, err)
		}
		w.check()
		if st := f.state(t); st.CurrentKeyID != "" || len(w.keys) != 1 || w.keys[old] == nil {
			t.Fatalf("committed or left a key although the audit log failed: %+v %v", st, w.keys)
		}
	})
	t.Run("after commit", func(t *testing.T) {
		w := newWorld(t)
		w.maxKeys = 2
		old := w.seed("sink:a", "sink:b")
		f := newFixture(t, fullProvider(w))
		f.p.Revoke = policies.Revoke{Soak: time.Millisecond}
		broken := true
		a := &failingAudit{fail: func(e Event) bool { return broken && e.Step == StepCommit && e.Result == ResultOK }}
		e := auditEngine(t, f, a)
		out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
		if err != nil || out.Result != OutcomeCommitted || !errors.Is(out.Err, ErrAudit) {
			t.Fatalf("Rotate = %+v, %v", out, err)
		}
		if k := w.keys[old]; k == nil || !k.active {
			t.Fatal("the old key was deactivated or deleted after a failed audit write")
		}
		broken = false
		out, err = e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
		if err != nil || out.Result != OutcomeDone {
			t.Fatalf("Rotate once the audit log works = %+v, %v", out, err)
		}
		w.check()
		var steps []string
		for _, ev := range a.got {
			steps = append(steps, string(ev.Step)+"/"+string(ev.Result))
		}
		assertOrder(t, steps, []string{"deactivate/ok", "revoke/ok", "done/ok"})
	})
}

// TestAuditRecordsIrreversibleStepsBeforeTheyAct: commit, deactivate and
// revoke each write a started record before they act, and a failure to
// write that record stops the step: the audit log can never miss an
// irreversible act that happened.
func TestAuditRecordsIrreversibleStepsBeforeTheyAct(t *testing.T) {
	for _, step := range []Step{StepCommit, StepDeactivate, StepRevoke} {
		t.Run(string(step), func(t *testing.T) {
			w := newWorld(t)
			w.maxKeys = 2
			old := w.seed("sink:a", "sink:b")
			f := newFixture(t, fullProvider(w))
			f.p.Revoke = policies.Revoke{Soak: time.Millisecond}
			broken := true
			// sawOldActive: was the old key still untouched by the step
			// (active; for revoke: not deleted) when its record was written?
			var sawOldActive []bool
			a := &failingAudit{fail: func(e Event) bool {
				if e.Step == step && e.Result == ResultStarted {
					k := w.keys[old]
					sawOldActive = append(sawOldActive, k != nil && (k.active || step == StepRevoke))
					return broken
				}
				return false
			}}
			e := auditEngine(t, f, a)
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || !errors.Is(out.Err, ErrAudit) {
				t.Fatalf("Rotate with the %s record failing = %+v, %v", step, out, err)
			}
			if k := w.keys[old]; k == nil || (!k.active && step != StepRevoke) {
				t.Fatalf("the old key was deactivated or deleted although the %s record was not written", step)
			}
			if step == StepCommit {
				if out.Result != OutcomeRolledBack || f.state(t).CurrentKeyID != "" {
					t.Fatalf("committed although the commit record was not written: %+v", out)
				}
				w.check()
				return
			}
			broken = false
			if out, err = e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != OutcomeDone {
				t.Fatalf("Rotate once the audit log works = %+v, %v", out, err)
			}
			w.check()
			if len(sawOldActive) < 2 || !sawOldActive[len(sawOldActive)-1] {
				t.Errorf("the %s record was not written while the old key was still active: %v", step, sawOldActive)
			}
			var steps []string
			for _, ev := range a.got {
				steps = append(steps, string(ev.Step)+"/"+string(ev.Result))
			}
			assertOrder(t, steps, []string{string(step) + "/started", string(step) + "/ok", "done/ok"})
		})
	}
}

// TestLogLines: one line per event, durations with units, the masked old
// key on the steps acting on it, manual=true, one waiting line per wait,
// and a debug line per probe attempt.
func TestLogLines(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{After: 50 * time.Millisecond, Soak: 50 * time.Millisecond}
	e := f.engine(t, map[string]string{})
	e.log = e.log.Level(-1)
	if out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != OutcomeDone {
		t.Fatalf("Rotate = %+v, %v", out, err)
	}
	waiting := map[string]int{}
	var probeLines int
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		if m["message"] == "probe attempt" {
			probeLines++
			continue
		}
		if m["message"] != "rotation" {
			continue
		}
		step, res := m["step"].(string), m["result"].(string)
		if strings.Contains(line, old) {
			t.Errorf("unmasked key id in %s", line)
		}
		if m["manual"] != true {
			t.Errorf("manual rotation not marked: %s", line)
		}
		if d, ok := m["duration"].(string); ok {
			if _, err := time.ParseDuration(d); err != nil {
				t.Errorf("duration without unit: %s", line)
			}
		}
		if (step == "deactivate" || step == "revoke") && m["old_key"] == nil {
			t.Errorf("%s does not name the old key: %s", step, line)
		}
		if res == "waiting" {
			waiting[step]++
		}
	}
	if waiting["drain"] != 1 || waiting["soak"] != 1 {
		t.Errorf("waiting lines per step %v, want one each", waiting)
	}
	if probeLines < 3 {
		t.Errorf("%d probe attempt lines", probeLines)
	}
}
