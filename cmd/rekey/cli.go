package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/agext/levenshtein"
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
const DefaultConfig = policies.DefaultPath

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, args, summary string
	run                 func(a *app, args []string) int
}

// app holds one invocation's streams.
type app struct {
	stdout, stderr io.Writer
	// introspect, when set, receives every flag set a command defines; the
	// completion uses it to learn a command's flags without running it.
	introspect func(*flag.FlagSet)
}

var commands []command

// positionalKinds says what a command's positional arguments are, for
// completion: policy names, paths, service actions or shells.
var positionalKinds = map[string]string{
	"rotate":     "policy",
	"plan":       "policy",
	"validate":   "path",
	"fmt":        "path",
	"service":    "action",
	"completion": "shell",
	"help":       "command",
}

func init() {
	commands = []command{
		{"run", "[-config PATH]", "run the daemon in the foreground: rotate every policy on its schedule", (*app).cmdRun},
		{"rotate", "[-config PATH] [-wait] [-dry-run] [-compromised [-reason TEXT] [-force-revoke -yes-revoke-unverified]] (-all | -selector LABELS | NAME...)", "rotate policies now, whether due or not; -compromised for a leaked key", (*app).cmdRotate},
		{"plan", "[-config PATH] [-json] [-selector LABELS] [NAME...]", "show what is due, why, and the steps a rotation would take", (*app).cmdPlan},
		{"status", "[-config PATH] [-json] [-selector LABELS]", "show each policy's key, age, expiry, last result, next due and rotation in flight", (*app).cmdStatus},
		{"validate", "[-json] [-config PATH] [PATH...]", "check policy files; exit 0 when valid, 1 when not", (*app).cmdValidate},
		{"fmt", "[-check | -write] [-config PATH] [PATH...]", "rewrite policy files in canonical layout", (*app).cmdFmt},
		{"service", "install|uninstall|start|stop|restart|status [-config PATH] [-force]", "manage rekey as a system service (systemd, Windows, launchd)", (*app).cmdService},
		{"completion", "bash|zsh|fish", "print a shell completion script (commands, flags, policy names)", (*app).cmdCompletion},
		{"journal", "recover [-config PATH] [-yes]", "rebuild a lost, empty or corrupt journal from the providers' key lists and the audit log", (*app).cmdJournal},
		{"version", "", "print the version", (*app).cmdVersion},
	}
}

// Run runs the rekey command line and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		a.usage(stderr)
		return ExitConfig
	}
	switch args[0] {
	case "-h", "-help", "--help":
		a.usage(stdout)
		return ExitOK
	case "help":
		return a.cmdHelp(args[1:])
	case "-v", "-version", "--version":
		return a.cmdVersion(nil)
	case completeCommand:
		return a.cmdComplete(args[1:])
	}
	if c, ok := lookupCommand(args[0]); ok {
		return c.run(a, args[1:])
	}
	fmt.Fprintf(stderr, "rekey: unknown command %q%s\n\n", args[0], suggestCommand(args[0]))
	a.usage(stderr)
	return ExitConfig
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func suggestCommand(name string) string {
	best, dist := "", 3
	for _, c := range commands {
		if d := levenshtein.Distance(name, c.name, nil); d < dist {
			best, dist = c.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: rekey COMMAND [options] [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n             %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, `  help       [COMMAND]
             show this text, or a command's options and arguments

Options may come before or after the arguments: rekey validate PATH -json.
"rekey help COMMAND" or "rekey COMMAND -h" shows a command's options;
rekey --version (or -v) prints the version.
`)
	fmt.Fprintf(w, "\nThe configuration path defaults to $REKEY_CONFIG, then %s.\n", DefaultConfig)
	fmt.Fprintf(w, "Exit codes: 0 ok, 1 configuration or usage error, 2 a rotation failed or was rolled back, 3 could not run.\n")
}

// cmdHelp prints the overview, or one command's usage.
func (a *app) cmdHelp(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		a.usage(a.stdout)
		return ExitOK
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(a.stderr, "rekey help: unknown command %q%s\n", args[0], suggestCommand(args[0]))
		return ExitConfig
	}
	if c.name == "service" && len(args) > 1 {
		return c.run(a, []string{args[1], "-h"})
	}
	return c.run(a, []string{"-h"})
}

// flags returns the flag set of the command name. Its Usage prints the
// command's synopsis, summary and options on standard output.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("rekey "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() { a.commandUsage(a.stdout, name, fs) }
	if a.introspect != nil {
		a.introspect(fs)
	}
	return fs
}

// commandUsage prints one command's synopsis, summary and options.
func (a *app) commandUsage(w io.Writer, name string, fs *flag.FlagSet) {
	c, ok := lookupCommand(name)
	if !ok {
		// A subcommand's flag set ("journal recover"): its synopsis is the
		// command's, which names the subcommand.
		name, _, _ = strings.Cut(name, " ")
		c, _ = lookupCommand(name)
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("rekey "+name+" "+c.args), c.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nOptions (before or after the arguments; -NAME or --NAME):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(a.stderr)
	}
	if strings.Contains(c.args, "-config") {
		fmt.Fprintf(w, "\nThe configuration path defaults to $REKEY_CONFIG, then %s.\n", DefaultConfig)
	}
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfig(), "configuration file or directory")
}

// defaultConfig is $REKEY_CONFIG, or DefaultConfig when it is not set.
func defaultConfig() string {
	if p := os.Getenv("REKEY_CONFIG"); p != "" {
		return p
	}
	return DefaultConfig
}

// parse parses flags and positional arguments in any order: flags may
// follow the arguments (rekey validate PATH -json), and "--" ends the flags.
// Afterwards fs.Args() holds the positional arguments. -h prints the
// command's usage on standard output (exit 0); a bad flag prints the error
// and a pointer to the usage on standard error (exit 1).
func parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return false, ExitOK
			}
			fmt.Fprintf(fs.Output(), "Run '%s -h' for usage.\n", fs.Name())
			return false, ExitConfig
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
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
		fmt.Fprintf(a.stderr, "rekey: %s: %s.%s\n", path, countErrors(diags), missingConfigHint(path))
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
	fs := a.flags("version")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	fmt.Fprintf(a.stdout, "rekey %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}
