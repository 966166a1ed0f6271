package rotator

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// TestProtocolTableOrder pins the order of the protocol and the failpoint
// names derived from it: the crash matrices of cmd/rekey and e2e iterate
// over Failpoints, and the journal holds step names.
func TestProtocolTableOrder(t *testing.T) {
	want := []Step{StepCreate, StepStage, StepTest, StepPromote, StepReload, StepVerify, StepCommit, StepDrain, StepDeactivate, StepSoak, StepRevoke, StepWatch}
	if got := ProtocolSteps(); !slices.Equal(got, want) {
		t.Fatalf("ProtocolSteps = %v, want %v", got, want)
	}
	wantFP := "create.before create.after stage.before stage.after test.before test.after promote.before promote.after " +
		"reload.before reload.after verify.before verify.after commit.before commit.after deactivate.before deactivate.after " +
		"revoke.before revoke.after rollback.before rollback.after"
	if got := strings.Join(Failpoints, " "); got != wantFP {
		t.Fatalf("Failpoints = %s\nwant %s", got, wantFP)
	}
	for i, s := range want {
		next := StepDone
		if i+1 < len(want) {
			next = want[i+1]
		}
		if got := nextStep(s); got != next {
			t.Errorf("nextStep(%s) = %s, want %s", s, got, next)
		}
		if got := IsBeforeCommit(s); got != (i <= slices.Index(want, StepCommit)) {
			t.Errorf("IsBeforeCommit(%s) = %v", s, got)
		}
	}
	if got := remainingSteps(StepSoak); !slices.Equal(got, []Step{StepSoak, StepRevoke, StepWatch}) {
		t.Fatalf("remainingSteps(soak) = %v", got)
	}
}

// TestEveryStepIsJournaledInTableOrder runs a rotation and checks that the
// journal passes through the steps of the table in order: every step that
// acts outside rekey (or probes) is journaled before it acts. Commit is
// journaled as the move to drain (with the commit time); revoke acts on the
// keys the commit journaled as retired, after the soak that journaled the
// deactivation; watch, with nothing to watch, is journaled with the end of
// the rotation.
func TestEveryStepIsJournaledInTableOrder(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{Soak: time.Millisecond}
	rec := &recordingJournal{Journal: f.j}
	f.j = rec
	e := f.engine(t, map[string]string{})
	if out, err := e.Rotate(t.Context(), "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != OutcomeDone {
		t.Fatalf("Rotate = %+v, %v", out, err)
	}
	var seen []Step
	for _, s := range rec.steps {
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
	}
	var want []Step
	for _, s := range append(ProtocolSteps(), StepDone) {
		if s != StepCommit && s != StepRevoke && s != StepWatch {
			want = append(want, s)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("journaled steps %v, want %v", seen, want)
	}
}

// recordingJournal records the step of every journaled write.
type recordingJournal struct {
	Journal
	steps []Step
}

func (j *recordingJournal) Update(ctx context.Context, policy string, fn func(*PolicyState) error) (PolicyState, error) {
	st, err := j.Journal.Update(ctx, policy, fn)
	if err == nil {
		switch {
		case st.Active != nil:
			j.steps = append(j.steps, st.Active.Step)
		case len(st.History) > 0:
			j.steps = append(j.steps, st.History[len(st.History)-1].Step)
		}
	}
	return st, err
}
