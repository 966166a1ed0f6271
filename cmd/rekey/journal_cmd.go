package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	rekeyd "github.com/rekeyhq/rekey/internal/daemon"
	"github.com/rekeyhq/rekey/rotator"
)

// cmdJournal is `rekey journal recover`: it rebuilds a lost, empty or
// corrupt journal from the providers' key lists and the audit log,
// showing what it will adopt, and writes it only with -yes.
func (a *app) cmdJournal(args []string) int {
	fs := a.flags("journal recover")
	cfgPath := configFlag(fs)
	yes := fs.Bool("yes", false, "write the rebuilt journal (without it, only show what would be adopted)")
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fs.Usage()
		return ExitOK
	case len(args) == 0:
		fmt.Fprintln(a.stderr, "rekey journal: name the subcommand: rekey journal recover [-config PATH] [-yes]")
		return ExitConfig
	case args[0] != "recover":
		fmt.Fprintf(a.stderr, "rekey journal: unknown subcommand %q; the only one is recover: rekey journal recover [-config PATH] [-yes]\n", args[0])
		return ExitConfig
	}
	if ok, code := parse(fs, args[1:]); !ok {
		return code
	}
	cfg, _ := a.loadConfig(*cfgPath)
	if cfg == nil {
		return ExitConfig
	}
	defer cfg.Connections.Close()
	if cfg.Journal != nil {
		fmt.Fprintf(a.stderr, "rekey journal recover: it rebuilds the embedded journal in state_dir; this configuration keeps its journal in etcd (journal \"etcd\"): restore etcd from a snapshot instead\n")
		return ExitRuntime
	}
	if c := control.Dial(cfg.StateDir); c != nil {
		fmt.Fprintf(a.stderr, "rekey journal recover: a daemon is running on %s: stop it first (if its journal was deleted under it, its log names a rescued copy to restore instead)\n", cfg.StateDir)
		return ExitRuntime
	}
	auditPath := filepath.Join(cfg.StateDir, rekeyd.AuditFile)
	j, err := rotator.OpenBoltJournal(cfg.StateDir, auditPath)
	switch {
	case err == nil:
		j.Close()
		fmt.Fprintf(a.stdout, "The journal in %s is readable and is the one this state directory started with: nothing to recover.\n", cfg.StateDir)
		return ExitOK
	case errors.Is(err, rotator.ErrLocked):
		fmt.Fprintf(a.stderr, "rekey journal recover: %v\n", err)
		return ExitRuntime
	case !errors.Is(err, rotator.ErrJournalLost) && !errors.Is(err, rotator.ErrJournalCorrupt):
		fmt.Fprintf(a.stderr, "rekey journal recover: %v\n", err)
		return ExitRuntime
	}
	fmt.Fprintf(a.stdout, "Journal problem: %v\n\n", err)
	ctx := newLogger(a.stderr, cfg.Log).Level(zerolog.WarnLevel).WithContext(context.Background())
	plan, err := rekeyd.PlanRecovery(ctx, cfg, auditPath, time.Now())
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey journal recover: %v\n", err)
		return ExitRuntime
	}
	var states []rotator.PolicyState
	for _, rc := range plan {
		fmt.Fprintf(a.stdout, "%s:\n", rc.Policy)
		for _, n := range rc.Notes {
			fmt.Fprintf(a.stdout, "  - %s\n", n)
		}
		if rc.State != nil {
			fmt.Fprintf(a.stdout, "  generation %d\n", rc.State.Generation)
			states = append(states, *rc.State)
		}
	}
	if !*yes {
		fmt.Fprintln(a.stdout, "\nNothing was changed. Check the keys above at each provider, then run again with -yes to write a new journal (the old file is kept as journal.db.lost-TIME).")
		return ExitOK
	}
	nj, err := rotator.ReplaceBoltJournal(cfg.StateDir, states)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey journal recover: %v\n", err)
		return ExitRuntime
	}
	nj.Close()
	fmt.Fprintf(a.stdout, "\nWrote a new journal in %s with %s; the old file is kept beside it. `rekey status` shows the result.\n", cfg.StateDir, plural(len(states), "policy", "policies"))
	return ExitOK
}
