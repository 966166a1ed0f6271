package rotator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// stepDef is one row of the protocol table: a step, the function that
// performs it, and what plan says about it. The order of the rows is the
// order of the protocol; nothing else restates it.
type stepDef struct {
	step Step
	// do performs the step and says what happened. The driver journals the
	// move to the next row, so a step function never names its successor.
	do func(r *run, ctx context.Context) (stepResult, error)
	// failpoints is true when the step makes external calls, each
	// bracketed by the failpoints STEP.before and STEP.after.
	failpoints bool
	// irreversible steps cannot be undone (commit, deactivate, revoke):
	// none runs after a failed audit write.
	irreversible bool
	// describe tells an operator what the step will do for a policy.
	describe func(p *policies.Policy) []string
}

// stepResult is what a step function reports.
type stepResult struct {
	// wake, when set, parks the rotation at this step until then: the step
	// is looked at again, not left.
	wake time.Time
	// quiet steps had nothing to do and emit no event.
	quiet bool
	// apply changes the policy state in the transaction that journals the
	// move to the next step (commit makes the new key current there).
	apply func(*PolicyState)
	// then runs once that transaction is durable.
	then func(ctx context.Context)
}

// protocol is the rotation protocol of docs/protocol.md, in order. Before
// StepCommit a failure rolls back; after it, the remaining steps are only
// ever completed.
var protocol = []stepDef{
	{step: StepCreate, do: (*run).create, failpoints: true, describe: describeCreate},
	{step: StepStage, do: (*run).stage, failpoints: true, describe: describeStage},
	{step: StepTest, do: (*run).test, failpoints: true, describe: describeTest},
	{step: StepPromote, do: (*run).promote, failpoints: true, describe: describePromote},
	{step: StepReload, do: (*run).reload, failpoints: true, describe: describeReload},
	{step: StepVerify, do: (*run).verify, failpoints: true, describe: describeVerify},
	{step: StepCommit, do: (*run).commit, failpoints: true, irreversible: true, describe: describeCommit},
	{step: StepDrain, do: (*run).drain, describe: describeDrain},
	{step: StepDeactivate, do: (*run).deactivate, failpoints: true, irreversible: true, describe: describeDeactivate},
	{step: StepSoak, do: (*run).soak, describe: describeSoak},
	{step: StepRevoke, do: (*run).revoke, failpoints: true, irreversible: true, describe: describeRevoke},
	{step: StepWatch, do: (*run).watch, describe: describeWatch},
}

// rollbackFailpoints bracket the rollback, which is not a row of the table:
// it is where every row before commit goes when it fails.
var rollbackFailpoints = []string{"rollback.before", "rollback.after"}

// Failpoints are the failpoint names, in protocol order, derived from the
// protocol table: each external call of a step has one point before it and
// one after it.
var Failpoints = failpointNames()

func failpointNames() []string {
	var names []string
	for _, d := range protocol {
		if d.failpoints {
			names = append(names, string(d.step)+".before", string(d.step)+".after")
		}
	}
	return append(names, rollbackFailpoints...)
}

// ProtocolSteps returns the steps of a rotation in order, from create to
// revoke (the terminal states done, rolled_back and failed are not steps).
func ProtocolSteps() []Step {
	out := make([]Step, len(protocol))
	for i, d := range protocol {
		out[i] = d.step
	}
	return out
}

func stepIndex(s Step) int {
	for i, d := range protocol {
		if d.step == s {
			return i
		}
	}
	return -1
}

// nextStep is the step after s in the table; StepDone after the last.
func nextStep(s Step) Step {
	i := stepIndex(s)
	if i < 0 || i+1 >= len(protocol) {
		return StepDone
	}
	return protocol[i+1].step
}

// remainingSteps are the steps from s (included) to the end of the table.
func remainingSteps(s Step) []Step {
	i := stepIndex(s)
	if i < 0 {
		return nil
	}
	return ProtocolSteps()[i:]
}

// IsBeforeCommit reports whether s is a step before the point of no return.
func IsBeforeCommit(s Step) bool {
	i := stepIndex(s)
	return i >= 0 && i <= stepIndex(StepCommit)
}

// drive runs the journaled rotation from its current step until it ends,
// parks (a wait after commit) or fails. Moves from step to step are
// journaled with the next save (run.later): a save or flush precedes every
// external effect, commit and the end of a rotation are saved at once, and
// whatever is left is flushed before drive returns.
func (r *run) drive(ctx context.Context) (Outcome, error) {
	out, err := r.driveSteps(ctx)
	if ferr := r.flush(ctx); ferr != nil && err == nil {
		return Outcome{}, ferr
	}
	return out, err
}

func (r *run) driveSteps(ctx context.Context) (Outcome, error) {
	for {
		step := r.rec.Step
		switch step {
		case StepRollback:
			return r.rollback(ctx, errors.New(r.rec.Error))
		case StepDone:
			return r.outcome(OutcomeDone, nil, time.Time{}), nil
		}
		i := stepIndex(step)
		if i < 0 {
			if r.rec.Committed() {
				return Outcome{}, fmt.Errorf("rotation %s: unexpected journaled step %q after commit", r.rec.ID, step)
			}
			return r.rollback(ctx, fmt.Errorf("unexpected journaled step %q", step))
		}
		t0 := r.e.now()
		if protocol[i].irreversible {
			if err := r.auditOK(step); err != nil {
				return r.stepFailed(ctx, step, t0, err)
			}
		}
		res, err := protocol[i].do(r, ctx)
		if err != nil {
			return r.stepFailed(ctx, step, t0, err)
		}
		if !res.wake.IsZero() {
			return r.outcome(OutcomeCommitted, nil, res.wake), nil
		}
		r.rec.Step = nextStep(step)
		if res.then != nil {
			if err := r.save(ctx, res.apply); err != nil {
				return Outcome{}, err
			}
		} else {
			r.later(res.apply, !res.quiet)
		}
		if !res.quiet {
			r.emit(ctx, step, ResultOK, r.e.now().Sub(t0), nil)
		}
		if res.then != nil {
			res.then(ctx)
		}
	}
}

// stepFailed decides what a failed step means: before commit the rotation
// rolls back; after commit it stays at the step and is retried later.
func (r *run) stepFailed(ctx context.Context, step Step, t0 time.Time, err error) (Outcome, error) {
	err = r.clean(err)
	if ctx.Err() != nil && r.rec.Committed() {
		return r.outcome(OutcomeCommitted, ctx.Err(), time.Time{}), ctx.Err()
	}
	r.emit(ctx, step, ResultFailed, r.e.now().Sub(t0), err)
	if !r.rec.Committed() {
		if ctx.Err() != nil {
			r.rec.Interrupted = true
		}
		return r.rollback(ctx, err)
	}
	if errors.Is(err, ErrStuck) {
		return r.outcome(OutcomeStuck, err, time.Time{}), nil
	}
	return r.outcome(OutcomeCommitted, err, r.e.now().Add(r.e.opts.RecheckInterval)), nil
}

// Steps describes the steps a rotation of p takes, in order, from the
// protocol table.
func Steps(p *policies.Policy) []string { return StepsFrom(p, StepCreate) }

// StepsFrom describes the steps of a rotation of p from step on: what
// remains of a rotation in flight. A rollback has no further steps.
func StepsFrom(p *policies.Policy, step Step) []string {
	i := stepIndex(step)
	if i < 0 {
		return nil
	}
	var s []string
	for _, d := range protocol[i:] {
		s = append(s, d.describe(p)...)
	}
	return s
}
