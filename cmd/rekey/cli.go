package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/policies"
)

// Exit codes of the rekey command.
const (
	// ExitOK: success.
	ExitOK = 0
	// ExitConfig: invalid configuration or usage.
	ExitConfig = 1
	// ExitRotation: a rotation failed or was rolled back.
	ExitRotation = 2
	// ExitRuntime: the command could not run (journal locked, daemon
	// unreachable, I/O error).
	ExitRuntime = 3
)

// DefaultConfig is the configuration path when neither -config nor
// REKEY_CONFIG is given.
const DefaultConfig = "/etc/rekey"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, args, summary string
	run                 func(a *app, args []string) int
}

// app holds one invocation's streams.
type app struct {
	stdout, stderr io.Writer
}

var commands []command

func init() {
	commands = []command{
		{"run", "[-config PATH]", "run the daemon in the foreground: rotate every policy on its schedule", (*app).cmdRun},
		{"rotate", "[-config PATH] [-wait] [-dry-run] (-all | NAME...)", "rotate policies now, whether due or not", (*app).cmdRotate},
		{"plan", "[-config PATH] [-json] [NAME...]", "show what is due, why, and the steps a rotation would take", (*app).cmdPlan},
		{"status", "[-config PATH] [-json]", "show each policy's key, age, last result, next due and rotation in flight", (*app).cmdStatus},
		{"validate", "[-json] [PATH]", "check policy files; exit 0 when valid, 1 when not", (*app).cmdValidate},
		{"fmt", "[-check] [-write] [PATH]", "rewrite policy files in canonical layout", (*app).cmdFmt},
		{"service", "install|uninstall|start|stop|restart|status [-config PATH]", "manage rekey as a system service (systemd, Windows, launchd)", (*app).cmdService},
		{"version", "", "print the version", (*app).cmdVersion},
	}
}

// Run runs the rekey command line and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		a.usage(stdout)
		if len(args) == 0 {
			return ExitConfig
		}
		return ExitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(a, args[1:])
		}
	}
	fmt.Fprintf(stderr, "rekey: unknown command %q\n\n", args[0])
	a.usage(stderr)
	return ExitConfig
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: rekey COMMAND [options]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n            %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nThe configuration path defaults to $REKEY_CONFIG, then %s.\n", DefaultConfig)
	fmt.Fprintf(w, "Exit codes: 0 ok, 1 configuration or usage error, 2 a rotation failed or was rolled back, 3 could not run.\n")
}

func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("rekey "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	return fs
}

func configFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("REKEY_CONFIG")
	if def == "" {
		def = DefaultConfig
	}
	return fs.String("config", def, "configuration file or directory")
}

func parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, ExitOK
		}
		return false, ExitConfig
	}
	return true, 0
}

// loadConfig loads and validates the configuration, writing diagnostics to
// stderr. It returns nil when the configuration has errors.
func (a *app) loadConfig(path string) (*policies.Config, *policies.Loader) {
	ld := policies.NewLoader()
	cfg, diags := ld.Load(path)
	if len(diags) > 0 {
		_ = policies.WriteDiagnostics(a.stderr, ld.Files(), diags, isTerminal(a.stderr))
	}
	if diags.HasErrors() || cfg == nil {
		fmt.Fprintf(a.stderr, "rekey: %s: %s\n", path, countErrors(diags))
		return nil, ld
	}
	return cfg, ld
}

func countErrors(diags hcl.Diagnostics) string {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	if n == 1 {
		return "1 error in the configuration"
	}
	return fmt.Sprintf("%d errors in the configuration", n)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// newLogger returns the process logger: human console output on a terminal,
// JSON lines otherwise (journald, files), unless the configuration says.
func newLogger(w io.Writer, s policies.LogSettings) zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(s.Level))
	if err != nil || s.Level == "" {
		level = zerolog.InfoLevel
	}
	console := isTerminal(w)
	switch s.Format {
	case "json":
		console = false
	case "console":
		console = true
	}
	out := w
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !isTerminal(w)}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

func (a *app) cmdVersion(args []string) int {
	fmt.Fprintf(a.stdout, "rekey %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}
