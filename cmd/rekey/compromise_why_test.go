package main

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/rotator"
)

// TestWhyNotRevokedSaysWhichKeyFailed: the summary of a compromised
// rotation says which key the dependents failed with (a stuck rollback:
// the old one too; a stuck commit: the new one), on one line.
func TestWhyNotRevokedSaysWhichKeyFailed(t *testing.T) {
	for _, c := range []struct {
		o    control.Outcome
		want string
	}{
		{control.Outcome{Step: string(rotator.StepRollback), Result: rotator.OutcomeStuck, Error: "interrupted at step verify (process stopped)\npolicy is stuck: both keys are kept"}, "do not pass with the old key either, so both keys are kept: interrupted at step verify (process stopped); policy is stuck"},
		{control.Outcome{Step: string(rotator.StepVerify), Result: rotator.OutcomeStuck, Error: "probe failed"}, "do not pass with the new key, so the old key is kept: probe failed"},
		{control.Outcome{Step: string(rotator.StepRollback), Result: rotator.OutcomeRolledBack}, "rolled back, the old key is served again: the rotation stopped at step rollback"},
	} {
		got := whyNotRevoked(c.o)
		if !strings.Contains(got, c.want) || strings.Contains(got, "\n") {
			t.Errorf("whyNotRevoked(%+v) = %q, want it to contain %q on one line", c.o, got, c.want)
		}
	}
}
