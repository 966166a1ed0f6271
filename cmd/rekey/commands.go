package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	rekeyd "github.com/rekeyhq/rekey/internal/daemon"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

func (a *app) cmdValidate(args []string) int {
	fs := a.flags("validate")
	asJSON := fs.Bool("json", false, "print diagnostics as JSON (the shape of terraform validate -json)")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	path := fs.Arg(0)
	if path == "" {
		path = os.Getenv("REKEY_CONFIG")
		if path == "" {
			path = DefaultConfig
		}
	}
	ld := policies.NewLoader()
	cfg, diags := ld.Load(path)
	if cfg != nil {
		defer cfg.Connections.Close()
	}
	if *asJSON {
		b, err := policies.DiagnosticsJSON(ld.Files(), diags)
		if err != nil {
			fmt.Fprintf(a.stderr, "rekey validate: %v\n", err)
			return ExitRuntime
		}
		fmt.Fprintln(a.stdout, string(b))
	} else {
		if len(diags) > 0 {
			_ = policies.WriteDiagnostics(a.stdout, ld.Files(), diags, isTerminal(a.stdout))
		}
		if !diags.HasErrors() {
			n := 0
			if cfg != nil {
				n = len(cfg.Policies)
			}
			fmt.Fprintf(a.stdout, "Valid: %d policies in %s.\n", n, path)
		} else {
			fmt.Fprintf(a.stdout, "Invalid: %s.\n", countErrors(diags))
		}
	}
	if diags.HasErrors() {
		return ExitConfig
	}
	return ExitOK
}

func (a *app) cmdFmt(args []string) int {
	fs := a.flags("fmt")
	check := fs.Bool("check", false, "list files whose layout differs and exit 1; change nothing")
	write := fs.Bool("write", false, "rewrite files in place")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	path := fs.Arg(0)
	if path == "" {
		path = "."
	}
	res, err := policies.FormatPath(path, *check, *write, a.stdout)
	if res != nil && len(res.Diagnostics) > 0 {
		_ = policies.WriteDiagnostics(a.stderr, res.Files, res.Diagnostics, isTerminal(a.stderr))
	}
	switch {
	case err != nil:
		fmt.Fprintf(a.stderr, "rekey fmt: %v\n", err)
		return ExitRuntime
	case res.Diagnostics.HasErrors():
		return ExitConfig
	case *check && !*write && len(res.Changed) > 0:
		return ExitConfig
	}
	return ExitOK
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
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
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
	if *asJSON {
		return a.printJSON(st)
	}
	writeStatus(a.stdout, st, time.Now())
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

func writeStatus(w io.Writer, st []rotator.PolicyStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tKEY\tAGE\tGEN\tLAST\tNEXT DUE\tIN FLIGHT")
	for _, s := range st {
		key, age := "-", "-"
		if s.CurrentKey != "" {
			key = s.CurrentKey
			age = humanDuration(time.Duration(s.KeyAgeSec) * time.Second)
		}
		last := s.LastResult
		if last == "" {
			last = "never"
		}
		if s.Stuck {
			last += " (STUCK)"
		} else if s.Failures > 0 {
			last += fmt.Sprintf(" (%d failures)", s.Failures)
		}
		next := "-"
		if !s.NextDue.IsZero() {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Policy, key, age, s.Generation, last, next, inflight)
	}
	tw.Flush()
	for _, s := range st {
		if s.LastError != "" && (s.Stuck || s.Failures > 0 || (s.InFlight != nil && s.LastResult != "done")) {
			fmt.Fprintf(w, "\n%s: %s\n", s.Policy, s.LastError)
		}
		if s.Warning != "" {
			fmt.Fprintf(w, "\n%s: warning: %s\n", s.Policy, s.Warning)
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
	if ok, code := parse(fs, args); !ok {
		return code
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	plan, err := a.plan(cfg, fs.Args())
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
		if p.Due {
			state = "DUE"
		}
		fmt.Fprintf(w, "%s: %s (%s)", p.Policy, state, p.Message)
		if p.At != "" && !p.Due {
			fmt.Fprintf(w, ", at %s", p.At)
		}
		fmt.Fprintln(w)
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
	if ok, code := parse(fs, args); !ok {
		return code
	}
	names := fs.Args()
	if *all == (len(names) > 0) {
		fmt.Fprintln(a.stderr, "rekey rotate: name one or more policies, or -all")
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
	printer := &stepPrinter{w: a.stdout}
	var outcomes []control.Outcome
	log := newLogger(a.stderr, cfg.Log).Level(zerolog.WarnLevel)
	c, l, err := a.connect(cfg, log, false)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey rotate: %v\n", err)
		return ExitRuntime
	}
	if c != nil {
		err := c.Rotate(ctx, control.RotateRequest{Policies: names, UntilDone: *wait}, func(m control.Message) {
			if m.Event != nil {
				printer.Observe(ctx, *m.Event)
			}
			if m.Outcome != nil {
				outcomes = append(outcomes, *m.Outcome)
			}
		})
		if err != nil {
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
		for _, n := range names {
			o, err := l.engine.Rotate(ctx, n, rotator.RotateOptions{UntilDone: *wait})
			outcomes = append(outcomes, control.FromOutcome(o, err))
		}
	}
	code := ExitOK
	for _, o := range outcomes {
		switch o.Result {
		case rotator.OutcomeDone:
			fmt.Fprintf(a.stdout, "%s: done\n", o.Policy)
		case rotator.OutcomeCommitted:
			fmt.Fprintf(a.stdout, "%s: committed; the old key is revoked by the daemon after the revoke rules (step %s, next check %s)\n", o.Policy, o.Step, o.Next)
			if err := o.Err(); err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(a.stdout, "  %s\n", o.Error)
			}
		default:
			fmt.Fprintf(a.stdout, "%s: %s: %s\n", o.Policy, o.Result, o.Error)
			code = ExitRotation
		}
	}
	return code
}

// stepPrinter shows each step of a rotation as it happens.
type stepPrinter struct {
	w io.Writer
}

// Observe implements rotator.Observer.
func (p *stepPrinter) Observe(_ context.Context, e rotator.Event) {
	line := fmt.Sprintf("%s  %-12s %-9s %-12s", e.Time.Format("15:04:05"), e.Policy, e.Step, e.Result)
	if e.Duration > 0 {
		line += fmt.Sprintf(" %s", e.Duration.Round(time.Millisecond))
	}
	if e.Step == rotator.StepCreate && e.NewKeyID != "" && e.Result == rotator.ResultOK {
		line += " new key " + e.NewKeyID
	}
	if e.Error != "" {
		line += "  " + e.Error
	}
	fmt.Fprintln(p.w, line)
}
