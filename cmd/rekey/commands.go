package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	rekeyd "github.com/rekeyhq/rekey/internal/daemon"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

func (a *app) cmdValidate(args []string) int {
	fs := a.flags("validate")
	asJSON := fs.Bool("json", false, "print diagnostics as one JSON document (the shape of terraform validate -json)")
	cfgPath := configFlag(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{*cfgPath}
	}
	// Each path is its own configuration: load them one by one.
	var all hcl.Diagnostics
	files := map[string]*hcl.File{}
	var text bytes.Buffer
	for _, path := range paths {
		ld := policies.NewLoader()
		cfg, diags := ld.Load(path)
		if cfg != nil {
			cfg.Connections.Close()
		}
		all = append(all, diags...)
		maps.Copy(files, ld.Files())
		if len(diags) > 0 {
			_ = policies.WriteDiagnostics(&text, ld.Files(), diags, isTerminal(a.stdout))
		}
		switch {
		case !diags.HasErrors():
			n := 0
			if cfg != nil {
				n = len(cfg.Policies)
			}
			fmt.Fprintf(&text, "Valid: %s in %s.\n", plural(n, "policy", "policies"), path)
		case len(paths) == 1:
			fmt.Fprintf(&text, "Invalid: %s.%s\n", countErrors(diags), missingConfigHint(path))
		default:
			fmt.Fprintf(&text, "Invalid: %s: %s.%s\n", path, countErrors(diags), missingConfigHint(path))
		}
	}
	if *asJSON {
		b, err := policies.DiagnosticsJSON(files, all)
		if err != nil {
			fmt.Fprintf(a.stderr, "rekey validate: %v\n", err)
			return ExitRuntime
		}
		fmt.Fprintln(a.stdout, string(b))
	} else {
		_, _ = a.stdout.Write(text.Bytes())
	}
	if all.HasErrors() {
		return ExitConfig
	}
	return ExitOK
}

// strayArgs reports arguments a command does not take; a directory of
// *.hcl files was probably meant as -config.
func (a *app) strayArgs(cmd string, args []string) {
	fmt.Fprintf(a.stderr, "rekey %s: unexpected argument %q: %s takes no arguments\n", cmd, args[0], cmd)
	if m, _ := filepath.Glob(filepath.Join(args[0], "*.hcl")); len(m) > 0 {
		fmt.Fprintf(a.stderr, "  %s holds configuration files: did you mean -config %s?\n", args[0], args[0])
	}
}

// plural returns "1 policy" or "N policies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// missingConfigHint says how to name the configuration when path does not
// exist.
func missingConfigHint(path string) string {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return fmt.Sprintf(" There is no %s: name the configuration with -config PATH (or an argument where the command takes paths), or set REKEY_CONFIG=PATH; without either, rekey reads %s.", path, DefaultConfig)
}

func (a *app) cmdFmt(args []string) int {
	fs := a.flags("fmt")
	check := fs.Bool("check", false, "list files whose layout differs and exit 1; change nothing")
	write := fs.Bool("write", false, "rewrite files in place and list them")
	cfgPath := configFlag(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if *check && *write {
		fmt.Fprintln(a.stderr, "rekey fmt: -check and -write exclude each other: -check changes nothing and fails when a file needs formatting, -write rewrites; run -write, then -check")
		return ExitConfig
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{*cfgPath}
	}
	code := ExitOK
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(a.stderr, "rekey fmt: %v.%s\n", cause(err), missingConfigHint(path))
			code = max(code, ExitConfig)
			continue
		}
		res, err := policies.FormatPath(path, *check, *write, a.stdout)
		if res != nil && len(res.Diagnostics) > 0 {
			_ = policies.WriteDiagnostics(a.stderr, res.Files, res.Diagnostics, isTerminal(a.stderr))
		}
		switch {
		case err != nil:
			fmt.Fprintf(a.stderr, "rekey fmt: %v\n", err)
			code = max(code, ExitConfig)
		case res.Diagnostics.HasErrors():
			code = max(code, ExitConfig)
		case *check && len(res.Changed) > 0:
			code = max(code, ExitConfig)
		}
	}
	return code
}

// cause returns a path error as "PATH: reason" without the operation.
func cause(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// local is an engine run inside this process, holding the journal lock.
type local struct {
	cfg    *policies.Config
	engine *rotator.Engine
	close  func()
}

// openLocal opens the journal and the audit log (internal/daemon), with
// the daemon's journal-loss checks. readOnly shows an empty in-memory
// journal when the state directory was never used.
func (a *app) openLocal(cfg *policies.Config, log zerolog.Logger, readOnly bool) (*local, error) {
	l, err := rekeyd.OpenLocal(cfg, log, readOnly)
	if err != nil {
		return nil, err
	}
	return &local{cfg: cfg, engine: l.Engine, close: l.Close}, nil
}

// connect returns a client of the running daemon, or, when no daemon
// runs, an engine in this process holding the journal lock. A daemon that
// is starting holds the lock before its socket answers: wait for it.
func (a *app) connect(cfg *policies.Config, log zerolog.Logger, readOnly bool) (*control.Client, *local, error) {
	var err error
	for range 50 {
		if c := control.Dial(cfg.StateDir); c != nil {
			return c, nil, nil
		}
		var l *local
		if l, err = a.openLocal(cfg, log, readOnly); err == nil {
			return nil, l, nil
		}
		if !errors.Is(err, rotator.ErrLocked) {
			return nil, nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, nil, err
}

func (a *app) cmdStatus(args []string) int {
	fs := a.flags("status")
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	selector := selectorFlag(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		a.strayArgs("status", fs.Args())
		return ExitConfig
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	sel, ok := a.parseSelector("status", *selector)
	if !ok {
		return ExitConfig
	}
	ctx := context.Background()
	var st []rotator.PolicyStatus
	c, l, err := a.connect(cfg, zerolog.Nop(), true)
	switch {
	case c != nil:
		st, err = c.Status(ctx)
	case l != nil:
		st, err = l.engine.Status(ctx)
		l.close()
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey status: %v\n", err)
		return ExitRuntime
	}
	if sel != nil {
		st = selectStatus(cfg, sel, st)
	}
	if *asJSON {
		fillOwner(cfg, st)
		return a.printJSON(st)
	}
	writeStatus(a.stdout, st, time.Now(), absPath(*cfgPath))
	a.writeOwnership(cfg)
	for _, s := range st {
		if s.Stuck {
			fmt.Fprintf(a.stdout, "\n%s is stuck: fix the cause, then release it with: %s\n", s.Policy, policies.RotateCommand(absPath(*cfgPath), s.Policy))
		}
	}
	return ExitOK
}

func (a *app) printJSON(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "rekey: %v\n", err)
		return ExitRuntime
	}
	return ExitOK
}

// writeStatus prints the status table and the lines below it; cfgPath is
// the configuration the commands it names should use.
func writeStatus(w io.Writer, st []rotator.PolicyStatus, now time.Time, cfgPath string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tKEY\tAGE\tEXPIRES\tGEN\tLAST\tNEXT DUE\tIN FLIGHT")
	for _, s := range st {
		key, age := "-", "-"
		if s.CurrentKey != "" {
			key = s.CurrentKey
			age = humanDuration(time.Duration(s.KeyAgeSec) * time.Second)
		}
		expires := expiryShown(s.KeyExpires, now)
		last := s.LastResult
		if last == "" {
			last = "never"
		}
		if s.Stuck {
			last += " (STUCK)"
		} else if s.Failures > 0 {
			last += " (" + plural(s.Failures, "failure", "failures") + ")"
		}
		next := "-"
		if !s.NextDue.IsZero() && s.InFlight == nil {
			if d := s.NextDue.Sub(now); d > 0 {
				next = "in " + humanDuration(d)
			} else {
				next = "now"
			}
		}
		if !s.Configured {
			next = "not configured"
		}
		inflight := "-"
		if f := s.InFlight; f != nil {
			inflight = string(f.Step)
			if len(f.PendingRevocation) > 0 {
				inflight += " (revoke " + strings.Join(f.PendingRevocation, ",")
				if !f.RevokeNotBefore.IsZero() && f.RevokeNotBefore.After(now) {
					inflight += " in " + humanDuration(f.RevokeNotBefore.Sub(now))
				}
				inflight += ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Policy, key, age, expires, s.Generation, last, next, inflight)
	}
	tw.Flush()
	for _, s := range st {
		if s.LastError != "" && (s.Stuck || s.Failures > 0 || (s.InFlight != nil && s.LastResult != "done")) {
			fmt.Fprintf(w, "\n%s: %s\n", s.Policy, s.LastError)
		}
		if s.Warning != "" {
			fmt.Fprintf(w, "\n%s: warning: %s\n", s.Policy, s.Warning)
		}
		if s.Alert != "" {
			fmt.Fprintf(w, "\n%s: ALERT: dependents failed after the old key was revoked: %s\n", s.Policy, s.Alert)
		}
		if s.Expired {
			fmt.Fprintf(w, "\n%s: ALERT: EXPIRED: the current key expired at %s and was not replaced: dependents that still use it fail; fix the cause, then run: %s\n", s.Policy, s.KeyExpires.UTC().Format(time.RFC3339), policies.RotateCommand(cfgPath, s.Policy))
		}
	}
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func (a *app) cmdPlan(args []string) int {
	fs := a.flags("plan")
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	selector := selectorFlag(fs)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	for _, n := range fs.Args() {
		if m, _ := filepath.Glob(filepath.Join(n, "*.hcl")); strings.ContainsRune(n, '/') && len(m) > 0 {
			fmt.Fprintf(a.stderr, "rekey plan: %q is not a policy name: it is a directory of configuration files; did you mean -config %s?\n", n, n)
			return ExitConfig
		}
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	names := fs.Args()
	if *selector != "" {
		sel, ok := a.parseSelector("plan", *selector)
		if !ok {
			return ExitConfig
		}
		if names = selectNames(cfg, sel, names); len(names) == 0 {
			fmt.Fprintf(a.stderr, "rekey plan: no policy matches -selector %s\n", *selector)
			return ExitConfig
		}
	}
	plan, err := a.plan(cfg, names)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey plan: %v\n", err)
		if errors.Is(err, rotator.ErrUnknownPolicy) {
			return ExitConfig
		}
		return ExitRuntime
	}
	if *asJSON {
		return a.printJSON(plan)
	}
	writePlan(a.stdout, plan)
	return ExitOK
}

func (a *app) plan(cfg *policies.Config, names []string) ([]rotator.PlanEntry, error) {
	ctx := context.Background()
	c, l, err := a.connect(cfg, zerolog.Nop(), true)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return c.Plan(ctx, names)
	}
	defer l.close()
	return l.engine.Plan(ctx, names)
}

func writePlan(w io.Writer, plan []rotator.PlanEntry) {
	for i, p := range plan {
		if i > 0 {
			fmt.Fprintln(w)
		}
		state := "not due"
		switch {
		case p.Due:
			state = "DUE"
		case p.State == rotator.NextInFlight:
			state = "IN FLIGHT, remaining steps below"
		case p.State == rotator.NextBackoff:
			state = "backing off"
		case p.State == rotator.NextStuck:
			state = "STUCK"
		case p.State == rotator.NextWindow:
			state = "waiting for its window"
		}
		fmt.Fprintf(w, "%s: %s (%s)", p.Policy, state, p.Message)
		if p.At != "" && !p.Due {
			fmt.Fprintf(w, ", at %s", p.At)
		}
		fmt.Fprintln(w)
		if p.KeyExpires != "" {
			if t, err := time.Parse(time.RFC3339, p.KeyExpires); err == nil {
				if p.Expired {
					fmt.Fprintf(w, "  ALERT: the current key EXPIRED at %s\n", p.KeyExpires)
				} else {
					fmt.Fprintf(w, "  the current key expires at %s (in %s)\n", p.KeyExpires, humanDuration(time.Until(t)))
				}
			}
		}
		for n, s := range p.Steps {
			fmt.Fprintf(w, "  %2d. %s\n", n+1, s)
		}
		for _, warn := range p.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
	}
}

func (a *app) cmdRotate(args []string) int {
	fs := a.flags("rotate")
	cfgPath := configFlag(fs)
	all := fs.Bool("all", false, "rotate every policy")
	wait := fs.Bool("wait", false, "wait through drain, soak and revoke instead of leaving them to the daemon")
	dry := fs.Bool("dry-run", false, "show the plan and change nothing")
	selector := selectorFlag(fs)
	comp := fs.Bool("compromised", false, "the current key leaked: rotate now and revoke the old key as soon as every dependent passes with the new one (no grace, drain or soak); implies -wait")
	note := fs.String("reason", "", "with -compromised: why, recorded in the audit log and notifications")
	force := fs.Bool("force-revoke", false, "with -compromised: revoke the old key even when the dependents fail with the new one (needs -yes-revoke-unverified, or typing the policy names)")
	yes := fs.Bool("yes-revoke-unverified", false, "confirm -force-revoke without the prompt")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	names := fs.Args()
	if n := btoi(*all) + btoi(len(names) > 0) + btoi(*selector != ""); n != 1 {
		fmt.Fprintln(a.stderr, "rekey rotate: name one or more policies, or -all, or -selector LABELS (one of them)")
		return ExitConfig
	}
	if !*comp && (*note != "" || *force || *yes) {
		fmt.Fprintln(a.stderr, "rekey rotate: -reason, -force-revoke and -yes-revoke-unverified go with -compromised")
		return ExitConfig
	}
	if *yes && !*force {
		fmt.Fprintln(a.stderr, "rekey rotate: -yes-revoke-unverified confirms -force-revoke; add -force-revoke, or drop it")
		return ExitConfig
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	if *all {
		for _, p := range cfg.Policies {
			names = append(names, p.Name)
		}
	}
	if *selector != "" {
		sel, ok := a.parseSelector("rotate", *selector)
		if !ok {
			return ExitConfig
		}
		if names = selectNames(cfg, sel, nil); len(names) == 0 {
			fmt.Fprintf(a.stderr, "rekey rotate: no policy matches -selector %s\n", *selector)
			return ExitConfig
		}
	}
	if *force && !*yes && !*dry && !a.confirmForceRevoke(names) {
		return ExitConfig
	}
	if *dry {
		plan, err := a.plan(cfg, names)
		if err != nil {
			fmt.Fprintf(a.stderr, "rekey rotate: %v\n", err)
			return ExitConfig
		}
		writePlan(a.stdout, plan)
		return ExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	printer := newStepPrinter(a.stdout, names)
	var outcomes []control.Outcome
	// The step lines show every step and its error; the engine's log adds
	// only what is worse than a failed step.
	log := newLogger(a.stderr, cfg.Log).Level(zerolog.ErrorLevel)
	c, l, err := a.connect(cfg, log, false)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey rotate: %v\n", err)
		return ExitRuntime
	}
	if c != nil {
		err := c.Rotate(ctx, control.RotateRequest{Policies: names, UntilDone: *wait, Compromised: *comp, Note: *note, ForceRevoke: *force}, func(m control.Message) {
			if m.Event != nil {
				printer.Observe(ctx, *m.Event)
			}
			if m.Outcome != nil {
				outcomes = append(outcomes, *m.Outcome)
			}
		})
		switch {
		case err != nil && ctx.Err() != nil:
			return a.interrupted(printer, names, "the daemon", "the daemon rolls the rotation back", func(ctx context.Context) ([]rotator.PolicyStatus, error) { return c.Status(ctx) })
		case errors.Is(err, control.ErrConnectionLost):
			fmt.Fprintf(a.stderr, "rekey rotate: %v (it stopped or crashed; see its log); where each rotation stands:\n", err)
			code := a.interrupted(printer, names, "the daemon's next start", "the daemon's next start rolls the rotation back", func(ctx context.Context) ([]rotator.PolicyStatus, error) {
				c, l, err := a.connect(cfg, log, true)
				if err != nil {
					return nil, err
				}
				if c != nil {
					return c.Status(ctx)
				}
				defer l.close()
				return l.engine.StatusOf(ctx, names)
			})
			return max(code, ExitRuntime)
		case err != nil:
			fmt.Fprintf(a.stderr, "rekey rotate: %v\n", err)
			if errors.Is(err, rotator.ErrUnknownPolicy) {
				return ExitConfig
			}
			return ExitRuntime
		}
	} else {
		defer l.close()
		l.engine.AddObserver(printer)
		for _, n := range names {
			if _, ok := l.engine.Policy(n); !ok {
				fmt.Fprintf(a.stderr, "rekey rotate: %v: %q\n", rotator.ErrUnknownPolicy, n)
				return ExitConfig
			}
		}
		outcomes = make([]control.Outcome, len(names))
		opts := rotator.RotateOptions{UntilDone: *wait, Compromised: *comp, Note: *note, ForceRevoke: *force}
		l.engine.RotateEach(ctx, names, opts, func(i int, o rotator.Outcome, err error) {
			outcomes[i] = control.FromOutcome(o, err)
		})
		if ctx.Err() != nil {
			return a.interrupted(printer, names, "the next `rekey run` (or `rekey rotate -wait`)", "the rotation is rolled back", func(ctx context.Context) ([]rotator.PolicyStatus, error) { return l.engine.StatusOf(ctx, names) })
		}
	}
	if *comp {
		return a.compromiseSummary(outcomes)
	}
	code := ExitOK
	for _, o := range outcomes {
		if o.Joined {
			fmt.Fprintf(a.stdout, "%s: joined rotation %s, which was already in flight; what it did:\n", o.Policy, o.RotationID)
		}
		switch o.Result {
		case "done":
			fmt.Fprintf(a.stdout, "%s: done\n", o.Policy)
		case "committed":
			fmt.Fprintf(a.stdout, "%s: committed; the old key is revoked by the daemon after the revoke rules (step %s, next check %s)\n", o.Policy, o.Step, o.Next)
			if o.Error != "" && !strings.Contains(o.Error, "context canceled") && !printer.shownError(o.Policy, o.Error) {
				fmt.Fprintf(a.stdout, "  %s\n", o.Error)
			}
			if o.Error != "" && len(o.Pending) > 0 {
				fmt.Fprintf(a.stdout, "  pending: %s (retried by the daemon or the next rekey rotate)\n", strings.Join(o.Pending, ", "))
			}
		default:
			line := fmt.Sprintf("%s: %s", o.Policy, o.Result)
			if o.Error != "" && !printer.shownError(o.Policy, o.Error) {
				line += ": " + o.Error
			}
			fmt.Fprintln(a.stdout, line)
			code = ExitRotation
		}
	}
	return code
}

// interrupted reports, after SIGINT or SIGTERM, where each rotation stands,
// from the journal (a joined rotation may have committed before this rotate
// saw any step), else from the steps seen: one committed is safe (the new
// key is served everywhere) and is finished later; one interrupted before
// its commit is rolled back. finisher names who finishes a committed
// rotation; rollback says who rolls back one that was not.
func (a *app) interrupted(p *stepPrinter, names []string, finisher, rollback string, status func(context.Context) ([]rotator.PolicyStatus, error)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	journal := map[string]string{}
	if sts, err := status(ctx); err == nil {
		for _, s := range sts {
			switch {
			case s.InFlight != nil && !s.InFlight.CommittedAt.IsZero():
				journal[s.Policy] = "committed"
			case s.InFlight != nil:
				journal[s.Policy] = string(s.InFlight.Step)
			}
		}
	}
	code := ExitOK
	for _, n := range names {
		st := p.state(n)
		if j, ok := journal[n]; ok && (j == "committed" || st == "") {
			st = j
		}
		switch st {
		case "committed":
			fmt.Fprintf(a.stdout, "%s: interrupted after the commit: the rotation is committed (the new key is in place) and %s finishes the drain, soak and revoke\n", n, finisher)
		case "done":
			fmt.Fprintf(a.stdout, "%s: done\n", n)
		case "":
			fmt.Fprintf(a.stdout, "%s: interrupted before it started: nothing changed\n", n)
			code = max(code, ExitRotation)
		default:
			fmt.Fprintf(a.stdout, "%s: interrupted before the commit (at %s): the old key stays in place and %s; rekey status shows whether the rollback finished\n", n, st, rollback)
			code = max(code, ExitRotation)
		}
	}
	return code
}

// stepPrinter shows each step of a rotation as it happens, in columns
// sized for the policy names, and each error once.
type stepPrinter struct {
	w     io.Writer
	width int
	mu    sync.Mutex
	shown map[string]string
	last  map[string]string
}

func newStepPrinter(w io.Writer, names []string) *stepPrinter {
	width := 10
	for _, n := range names {
		width = max(width, len(n))
	}
	return &stepPrinter{w: w, width: width, shown: map[string]string{}, last: map[string]string{}}
}

// Observe implements rotator.Observer.
func (p *stepPrinter) Observe(_ context.Context, e rotator.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	result := string(e.Result)
	if result == string(e.Step) {
		result = ""
	}
	line := fmt.Sprintf("%s  %-*s  %-11s %-11s", e.Time.Format("15:04:05"), p.width, e.Policy, e.Step, result)
	if e.Duration > 0 {
		line += fmt.Sprintf(" %s", e.Duration.Round(time.Millisecond))
	}
	if e.Step == rotator.StepCreate && e.NewKeyID != "" && e.Result == rotator.ResultOK {
		line += " new key " + e.NewKeyID
	}
	if e.Error != "" && p.shown[e.Policy] != e.Error {
		line += "  " + e.Error
		p.shown[e.Policy] = e.Error
	}
	fmt.Fprintln(p.w, strings.TrimRight(line, " "))
	switch {
	case e.Step == rotator.StepCommit && e.Result == rotator.ResultOK:
		p.last[e.Policy] = "committed"
	case e.Step == rotator.StepDone:
		p.last[e.Policy] = "done"
	case p.last[e.Policy] != "committed" && p.last[e.Policy] != "done":
		p.last[e.Policy] = string(e.Step)
	}
}

// shownError reports whether err was already printed for the policy.
func (p *stepPrinter) shownError(policy, err string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shown[policy] == err
}

// state is "committed" or "done" once the policy's rotation got there,
// else the last step seen ("" for none).
func (p *stepPrinter) state(policy string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[policy]
}

// absPath is path made absolute, for commands printed to be run from any
// directory; path itself when that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
