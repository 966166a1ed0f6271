package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

func selectorFlag(fs *flag.FlagSet) *string {
	return fs.String("selector", "", "only the policies whose labels match, such as env=prod,team=payments")
}

// parseSelector parses a -selector value; nil, true when it is empty.
func (a *app) parseSelector(cmd, s string) (policies.Selector, bool) {
	if s == "" {
		return nil, true
	}
	sel, err := policies.ParseSelector(s)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey %s: -selector: %v\n", cmd, err)
		return nil, false
	}
	return sel, true
}

// selectNames returns the policies of cfg that match sel, in load order,
// restricted to names when names is not empty.
func selectNames(cfg *policies.Config, sel policies.Selector, names []string) []string {
	var out []string
	for _, p := range cfg.Policies {
		if sel.Matches(p.Labels) && (len(names) == 0 || slices.Contains(names, p.Name)) {
			out = append(out, p.Name)
		}
	}
	return out
}

// selectStatus keeps the status rows of the policies that match sel.
func selectStatus(cfg *policies.Config, sel policies.Selector, st []rotator.PolicyStatus) []rotator.PolicyStatus {
	keep := selectNames(cfg, sel, nil)
	var out []rotator.PolicyStatus
	for _, s := range st {
		if slices.Contains(keep, s.Policy) {
			out = append(out, s)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expiryShown is the EXPIRES column of rekey status.
func expiryShown(exp, now time.Time) string {
	switch {
	case exp.IsZero():
		return "-"
	case !now.Before(exp):
		return "EXPIRED"
	default:
		return "in " + humanDuration(exp.Sub(now))
	}
}

// confirmForceRevoke asks the operator to type the policy names before a
// forced revocation; without a terminal it refuses and names the flag.
func (a *app) confirmForceRevoke(names []string) bool {
	if !isTerminal(os.Stdin) || !isTerminal(a.stdout) {
		fmt.Fprintf(a.stderr, "rekey rotate: -force-revoke deletes the old key even if dependents still need it; confirm with -yes-revoke-unverified (or run it on a terminal and type the policy names)\n")
		return false
	}
	return confirmNames(os.Stdin, a.stdout, a.stderr, names)
}

// confirmNames reads one line and accepts it when it holds exactly the
// policy names.
func confirmNames(in io.Reader, out, errw io.Writer, names []string) bool {
	fmt.Fprintf(out, "-force-revoke deletes the old key of %s even if the dependents fail with the new key.\nType the policy names to confirm: ", strings.Join(names, ", "))
	line, _ := bufio.NewReader(in).ReadString('\n')
	got := strings.Fields(line)
	want := slices.Clone(names)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		fmt.Fprintln(errw, "rekey rotate: not confirmed; nothing was changed")
		return false
	}
	return true
}

// compromiseSummary prints the table of a compromised rotation: policy,
// new key, old key, and when the old key was revoked or why it was not.
// The exit code is ExitRotation while any compromised key is still live.
func (a *app) compromiseSummary(outcomes []control.Outcome) int {
	fmt.Fprintln(a.stdout)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tNEW KEY\tOLD KEY\tOLD KEY REVOKED AT / WHY NOT")
	code := ExitOK
	for _, o := range outcomes {
		rep := rotator.CompromiseReport{Live: true}
		if o.Compromise != nil {
			rep = *o.Compromise
		}
		newKey, oldKey := dash(rep.NewKey), dash(strings.Join(rep.OldKeys, ","))
		var why string
		switch {
		case !rep.RevokedAt.IsZero():
			why = rep.RevokedAt.UTC().Format(time.RFC3339)
			if rep.Forced {
				why += " (FORCED: the dependents did not pass with the new key)"
			}
		case !rep.Live:
			why = "nothing to revoke: rekey knew no old key"
		default:
			code = ExitRotation
			why = "STILL LIVE: " + whyNotRevoked(o)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Policy, newKey, oldKey, why)
	}
	tw.Flush()
	if code != ExitOK {
		fmt.Fprintln(a.stdout, "\nA compromised key is still accepted by its provider. Fix what the table says, then run rekey rotate -compromised again; add -force-revoke -yes-revoke-unverified to revoke it although dependents fail.")
	}
	return code
}

func whyNotRevoked(o control.Outcome) string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(o.Error, "\n", "; ")), " ")
	if msg == "" {
		msg = "the rotation stopped at step " + o.Step
	}
	switch {
	case o.Result == rotator.OutcomeRolledBack:
		return "the rotation was rolled back, the old key is served again: " + msg
	case o.Result == rotator.OutcomeStuck && o.Step == string(rotator.StepRollback):
		return "the rotation was rolled back, but the dependents do not pass with the old key either, so both keys are kept: " + msg
	case o.Result == rotator.OutcomeStuck:
		return "the dependents do not pass with the new key, so the old key is kept: " + msg
	case o.Result == rotator.OutcomeFailed:
		return "the rotation failed: " + msg
	}
	return string(o.Result) + ": " + msg
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
