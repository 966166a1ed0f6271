package main

// The README is tested: these tests fail when it drifts from the code.
//
//   - TestReadmeCommandsAreRun: every `rekey ...` command in a README.md
//     code block or in a file under examples/ (`go run ./cmd/rekey`, `sudo`
//     and `./rekey` count as `rekey`) is run by a script in testdata/readme/
//     with the same arguments, and with the exit code the README documents
//     ("# exit N"). Lines with placeholders ([-json], PATH, NAME, a|b, ...)
//     are synopses: their command, actions and flags must exist. So must
//     those of every inline `rekey ...` in the prose.
//   - TestReadmeScripts runs those scripts (testscript; see below).
//   - TestReadmeAttributes: every attribute of every registered plugin kind
//     (the gohcl struct tags and hcl schemas of the kind's package) is in its
//     README section's tables, and every attribute those tables name exists;
//     the same for the core settings (policies package) and "Policy files".
//   - TestReadmeMetrics: every metric internal/metrics registers is in the
//     README's metrics table, and every rekey_* name the README mentions is
//     registered.
//
// Scripts (testdata/readme/*.txtar) run in a copy of examples/ ($WORK/examples).
// Commands:
//
//	rekey ARGS...              run rekey, expect exit 0
//	! rekey CODE ARGS...       run rekey, expect exit CODE
//	exec rekey ARGS... &       run rekey in the background (kill -INT, wait)
//	waitdaemon STATE_DIR       wait until the daemon's control socket answers
//
// Arguments under /etc/rekey and /var/lib/rekey are taken below $WORK, so a
// script runs the README's command verbatim.

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/sinks"
)

const repoRoot = "../.."

// shownCommand is a rekey command shown in the README or an example.
type shownCommand struct {
	where    string // FILE:LINE
	text     string
	words    []string
	exit     int // documented exit code, or -1
	synopsis bool
}

var (
	placeholder = regexp.MustCompile(`^-?[A-Z][A-Z_]+(\.\.\.)?$`)
	exitComment = regexp.MustCompile(`\bexit (?:code |status )?(\d)\b`)
	inlineRekey = regexp.MustCompile("`((?:sudo )?rekey [^`]+)`")
	inlineWord  = regexp.MustCompile(`^-{0,2}[a-z][a-z_-]*$`)
)

// splitWords splits a command line as a shell would for the simple quoting
// READMEs use ('...' and "...").
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// stripComment removes a shell comment (" # ..."), returning the command
// and the comment.
func stripComment(line string) (string, string) {
	quote := rune(0)
	for i, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimSpace(line[:i]), line[i+1:]
		}
	}
	return strings.TrimSpace(line), ""
}

// asRekey returns the words of a rekey command line, or nil: `go run
// ./cmd/rekey`, `sudo`, `./rekey` and /usr/local/bin/rekey all count as
// rekey.
func asRekey(cmd string) []string {
	w := splitWords(cmd)
	for len(w) > 0 && w[0] == "sudo" {
		w = w[1:]
	}
	if len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/rekey" {
		w = append([]string{"rekey"}, w[3:]...)
	}
	if len(w) > 0 && (w[0] == "./rekey" || strings.HasSuffix(w[0], "bin/rekey")) {
		w[0] = "rekey"
	}
	if len(w) == 0 || w[0] != "rekey" {
		return nil
	}
	return w
}

func isSynopsis(words []string) bool {
	for _, w := range words {
		if strings.ContainsAny(w, "[]|()") || strings.HasSuffix(w, "...") || placeholder.MatchString(w) {
			return true
		}
	}
	return false
}

// commandsIn returns the rekey commands of one line of a shell code block.
func commandsIn(where, line string) []shownCommand {
	cmd, comment := stripComment(line)
	exit := -1
	if m := exitComment.FindStringSubmatch(comment); m != nil {
		exit, _ = strconv.Atoi(m[1])
	}
	var out []shownCommand
	for _, part := range strings.Split(cmd, "&&") {
		// Output redirections are the shell's, not rekey's.
		if i := strings.Index(part, " >"); i >= 0 {
			part = part[:i]
		}
		if w := asRekey(strings.TrimSpace(part)); w != nil {
			out = append(out, shownCommand{where: where, text: strings.Join(w, " "), words: w, exit: exit, synopsis: isSynopsis(w)})
		}
	}
	return out
}

// readmeCommands lists the rekey commands in README.md's code blocks and in
// the files under examples/.
func readmeCommands(t *testing.T) []shownCommand {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []shownCommand
	inBlock, lang, cont := false, "", ""
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock, lang = !inBlock, strings.TrimSpace(strings.TrimPrefix(line, "```"))
			continue
		}
		if !inBlock || !slices.Contains([]string{"", "sh", "shell", "bash", "console", "text"}, lang) {
			continue
		}
		if lang == "console" {
			after, ok := strings.CutPrefix(line, "$ ")
			if !ok {
				continue
			}
			line = after
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cont += s + " "
			continue
		}
		line, cont = cont+line, ""
		out = append(out, commandsIn(fmt.Sprintf("README.md:%d", i+1), line)...)
	}
	err = filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, string(filepath.Separator)+"state"+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			line = strings.TrimSpace(strings.TrimLeft(line, "#/"))
			line = strings.Trim(line, "`")
			for _, c := range commandsIn(fmt.Sprintf("%s:%d", rel, i+1), line) {
				// Prose such as "rekey logs in ..." is not a command.
				if _, ok := lookupCommand(c.words[min(1, len(c.words)-1)]); ok {
					out = append(out, c)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// scriptCommand is a rekey command a script in testdata/readme runs.
type scriptCommand struct {
	where string
	words []string
	exit  int // -1: background or not checked
}

func scriptCommands(t *testing.T) []scriptCommand {
	t.Helper()
	files, _ := filepath.Glob("testdata/readme/*.txtar")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/readme")
	}
	var out []scriptCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "-- ") {
				break
			}
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				if j := strings.Index(line, "]"); j > 0 {
					line = strings.TrimSpace(line[j+1:])
				}
			}
			neg := strings.HasPrefix(line, "! ")
			line = strings.TrimPrefix(line, "! ")
			w := splitWords(line)
			sc := scriptCommand{where: fmt.Sprintf("%s:%d", f, i+1)}
			switch {
			case len(w) > 0 && w[0] == "rekey" && neg:
				if len(w) < 2 {
					t.Fatalf("%s: ! rekey needs the expected exit code", sc.where)
				}
				sc.exit, _ = strconv.Atoi(w[1])
				sc.words = append([]string{"rekey"}, w[2:]...)
			case len(w) > 0 && w[0] == "rekey":
				sc.words = w
			case len(w) > 1 && w[0] == "exec" && w[1] == "rekey":
				sc.words, sc.exit = w[1:], -1
				if sc.words[len(sc.words)-1] == "&" {
					sc.words = sc.words[:len(sc.words)-1]
				}
			default:
				continue
			}
			out = append(out, sc)
		}
	}
	return out
}

var validateExample = regexp.MustCompile(`^rekey validate examples/[a-z0-9_-]+/?$`)

func TestReadmeCommandsAreRun(t *testing.T) {
	shown := readmeCommands(t)
	scripts := scriptCommands(t)
	run, synopses := 0, 0
	for _, c := range shown {
		if c.synopsis {
			synopses++
			checkSynopsis(t, c.where, c.words)
			continue
		}
		run++
		if validateExample.MatchString(c.text) {
			// Every example validates on its own: run it here.
			want := max(c.exit, 0)
			if out, errOut, code := runIn(t, repoRoot, c.words[1:]...); code != want {
				t.Errorf("%s: `%s` exited %d, the README says %d:\n%s%s", c.where, c.text, code, want, out, errOut)
			}
			continue
		}
		var found []scriptCommand
		for _, s := range scripts {
			if slices.Equal(s.words, c.words) {
				found = append(found, s)
			}
		}
		switch {
		case len(found) == 0:
			t.Errorf("%s: `%s` is shown but no script in cmd/rekey/testdata/readme runs it: add `rekey %s` (exit 0) or `! rekey CODE %s` to a script there",
				c.where, c.text, strings.Join(c.words[1:], " "), strings.Join(c.words[1:], " "))
		case c.exit >= 0 && !slices.ContainsFunc(found, func(s scriptCommand) bool { return s.exit == c.exit }):
			t.Errorf("%s: `%s` is documented to exit %d, but the scripts expect another code (%s)", c.where, c.text, c.exit, found[0].where)
		}
	}
	b, _ := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	inline := 0
	for i, line := range strings.Split(string(b), "\n") {
		for _, m := range inlineRekey.FindAllStringSubmatch(line, -1) {
			// Only spans that read as a command line: `rekey WORD ...`, not
			// `rekey policy=... generation=7`.
			if w := asRekey(m[1]); w != nil && (len(w) < 2 || inlineWord.MatchString(w[1])) {
				inline++
				checkSynopsis(t, fmt.Sprintf("README.md:%d", i+1), w)
			}
		}
	}
	t.Logf("%d commands run by scripts or as example checks, %d synopses and %d inline commands checked against the command line", run, synopses, inline)
	if run < 10 {
		t.Fatalf("found only %d runnable commands: is the extraction broken?", run)
	}
}

// runIn runs rekey in-process with dir as the working directory for the
// relative paths in args.
func runIn(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	for i, a := range args {
		if strings.HasPrefix(a, "examples/") {
			args[i] = filepath.Join(dir, a)
		}
	}
	return run(t, args...)
}

// checkSynopsis checks that a synopsis names a command, actions and flags
// that exist.
func checkSynopsis(t *testing.T, where string, words []string) {
	t.Helper()
	if len(words) < 2 {
		return
	}
	name := strings.Trim(words[1], "[]()|")
	switch {
	case name == "" || placeholder.MatchString(name):
		return
	case slices.Contains([]string{"-h", "--help", "-help", "-v", "--version", "-version"}, name):
		return
	case name == "help":
		for _, w := range words[2:] {
			if _, ok := lookupCommand(strings.Trim(w, "[]")); !ok && !placeholder.MatchString(strings.Trim(w, "[]")) {
				t.Errorf("%s: `%s`: no command %q", where, strings.Join(words, " "), w)
			}
		}
		return
	}
	if _, ok := lookupCommand(name); !ok {
		t.Errorf("%s: `%s`: rekey has no command %q", where, strings.Join(words, " "), name)
		return
	}
	fs := (&app{stdout: io.Discard, stderr: io.Discard}).flagSetOf(name, nil)
	for _, w := range words[2:] {
		for _, tok := range strings.FieldsFunc(w, func(r rune) bool { return strings.ContainsRune("[]()|,", r) }) {
			tok = strings.TrimSuffix(tok, "...")
			switch {
			case strings.HasPrefix(tok, "-"):
				f, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
				if fs == nil || fs.Lookup(f) == nil {
					t.Errorf("%s: `%s`: rekey %s has no flag %s", where, strings.Join(words, " "), name, tok)
				}
			case name == "service" && tok == strings.ToLower(tok) && !strings.Contains(tok, "/") && tok == strings.Trim(w, "[]()|"):
				if !slices.Contains(serviceActions, tok) && w == words[2] {
					t.Errorf("%s: `%s`: rekey service has no action %q", where, strings.Join(words, " "), tok)
				}
			}
		}
	}
}

// TestReadmeScripts runs the scripts in testdata/readme.
func TestReadmeScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(exe, filepath.Join(bin, "rekey")); err != nil {
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "rekey"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/readme",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			for i, v := range env.Vars {
				if p, ok := strings.CutPrefix(v, "PATH="); ok {
					env.Vars[i] = "PATH=" + bin + string(filepath.ListSeparator) + p
				}
			}
			return copyTree(filepath.Join(repoRoot, "examples"), filepath.Join(env.WorkDir, "examples"))
		},
		Condition: func(cond string) (bool, error) {
			if cond == "privategroup" {
				return harden.UserPrivateGroup(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"rekey":      scriptRekey,
			"waitdaemon": scriptWaitDaemon,
		},
	})
}

func scriptRekey(ts *testscript.TestScript, neg bool, args []string) {
	want := 0
	if neg {
		n, err := strconv.Atoi(firstOr(args, ""))
		if err != nil || n == 0 {
			ts.Fatalf("write `! rekey CODE ARGS...` with the expected non-zero exit code")
		}
		want, args = n, args[1:]
	}
	work := ts.Getenv("WORK")
	mapped := make([]string, len(args))
	for i, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case strings.HasPrefix(a, "/etc/rekey") || strings.HasPrefix(a, "/var/lib/rekey"):
			a = filepath.Join(work, a)
		case ok && strings.HasPrefix(k, "-") && (strings.HasPrefix(v, "/etc/rekey") || strings.HasPrefix(v, "/var/lib/rekey")):
			a = k + "=" + filepath.Join(work, v)
		}
		mapped[i] = a
	}
	err := ts.Exec("rekey", mapped...)
	got := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("rekey: %v", err)
	}
	if got != want {
		ts.Fatalf("rekey %s: exit %d, want %d", strings.Join(args, " "), got, want)
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// scriptWaitDaemon waits until a daemon answers on the state directory's
// control socket.
func scriptWaitDaemon(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitdaemon STATE_DIR")
	}
	dir := ts.MkAbs(args[0])
	deadline := time.Now().Add(2 * time.Minute)
	for control.Dial(dir) == nil {
		if time.Now().After(deadline) {
			ts.Fatalf("no daemon answered on %s within 2 minutes", control.SocketPath(dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyTree copies the examples with modes a umask 022 clone has (state
// directories left out).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == "state" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if info.Mode()&0o100 != 0 {
			mode = 0o755
		}
		if err := os.WriteFile(target, b, mode); err != nil {
			return err
		}
		return os.Chmod(target, mode)
	})
}

// TestReadmeConsoleOutput compares the output the README shows after a
// `$ rekey ...` line with the file "console: rekey ..." of the script that
// runs it (which checks it with cmpenv); $WORK/ there is / in the README.
func TestReadmeConsoleOutput(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	where := map[string]int{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```console" {
			continue
		}
		cmd := ""
		var out []string
		flush := func() {
			if w := asRekey(cmd); w != nil {
				shown[strings.Join(w, " ")] = strings.Join(out, "\n") + "\n"
			}
		}
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			if c, ok := strings.CutPrefix(lines[i], "$ "); ok {
				flush()
				cmd, out = c, nil
				where[strings.Join(asRekey(c), " ")] = i + 1
				continue
			}
			out = append(out, lines[i])
		}
		flush()
	}
	files, _ := filepath.Glob("testdata/readme/*.txtar")
	n := 0
	for _, f := range files {
		ar, err := txtar.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, af := range ar.Files {
			cmd, ok := strings.CutPrefix(af.Name, "console: ")
			if !ok {
				continue
			}
			n++
			got, ok := shown[cmd]
			if !ok {
				t.Errorf("%s has the console output of `%s`, which the README does not show in a console block", f, cmd)
				continue
			}
			want := strings.ReplaceAll(string(af.Data), "$WORK/", "/")
			if got != want {
				t.Errorf("README.md:%d: the output shown for `%s` is not what the command prints (%s):\n--- README\n%s--- rekey\n%s", where[cmd], cmd, f, got, want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no script holds a console output: is the scan broken?")
	}
}

// --- attributes ---

// readmeSection is the text of a README section: from its heading to the
// next heading of the same or a higher level.
func readmeSections(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	out := map[string]string{}
	inBlock := false
	type open struct {
		title string
		level int
		start int
	}
	var stack []open
	closeTo := func(level, end int) {
		for len(stack) > 0 && stack[len(stack)-1].level >= level {
			o := stack[len(stack)-1]
			out[o.title] = strings.Join(lines[o.start:end], "\n")
			stack = stack[:len(stack)-1]
		}
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			inBlock = !inBlock
		}
		if inBlock || !strings.HasPrefix(l, "#") {
			continue
		}
		level := len(l) - len(strings.TrimLeft(l, "#"))
		title := strings.TrimSpace(l[level:])
		closeTo(level, i)
		stack = append(stack, open{title: title, level: level, start: i})
	}
	closeTo(0, len(lines))
	return out
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// tableNames returns the attribute names in the first column of the tables
// of a section whose header's first cell is one of headers (all tables when
// headers is empty), and the names shown in backquotes anywhere in the
// section's text (`name`, `a.b`, `auth "approle"`).
func tableNames(section string, headers ...string) (first, inCells map[string]bool) {
	first, inCells = map[string]bool{}, map[string]bool{}
	take := false
	inBlock := false
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "```") {
			inBlock = !inBlock
		}
		if inBlock || !strings.HasPrefix(l, "|") {
			take = take && strings.HasPrefix(l, "|")
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		head := strings.TrimSpace(cells[0])
		if strings.HasPrefix(head, "---") {
			continue
		}
		if !take {
			// A header row.
			take = len(headers) == 0 || slices.Contains(headers, head)
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			for _, n := range attrNames(m[1]) {
				first[n] = true
			}
		}
	}
	inBlock = false
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "```") {
			inBlock = !inBlock
		}
		if inBlock {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(l, -1) {
			for _, n := range attrNames(m[1]) {
				inCells[n] = true
			}
		}
	}
	return first, inCells
}

// attrNames returns the attribute or block names in one backticked table
// cell token: `a`, `a.b`, `auth "approle"`, `policy "NAME"`.
func attrNames(tok string) []string {
	tok, _, _ = strings.Cut(tok, " ")
	var out []string
	for _, p := range strings.Split(tok, ".") {
		if identifier.MatchString(p) {
			out = append(out, p)
		}
	}
	return out
}

// schemaNames returns the attribute and block names a package decodes:
// gohcl struct tags (attributes and blocks) and hcl.AttributeSchema /
// hcl.BlockHeaderSchema literals in its non-test files.
func schemaNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if n.Tag == nil {
					return true
				}
				tag, _ := strconv.Unquote(n.Tag.Value)
				v, ok := reflect.StructTag(tag).Lookup("hcl")
				if !ok {
					return true
				}
				name, kind, _ := strings.Cut(v, ",")
				if name != "" && slices.Contains([]string{"", "optional", "attr", "block"}, kind) {
					names[name] = true
				}
			case *ast.CompositeLit:
				if isSchemaType(n.Type) {
					schemaLiteral(n, names)
				}
				if at, ok := n.Type.(*ast.ArrayType); ok && isSchemaType(at.Elt) {
					for _, e := range n.Elts {
						if lit, ok := e.(*ast.CompositeLit); ok {
							schemaLiteral(lit, names)
						}
					}
				}
			}
			return true
		})
	}
	return names
}

func isSchemaType(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && (sel.Sel.Name == "AttributeSchema" || sel.Sel.Name == "BlockHeaderSchema")
}

// schemaLiteral adds the Name or Type of an hcl.AttributeSchema or
// hcl.BlockHeaderSchema literal.
func schemaLiteral(n *ast.CompositeLit, names map[string]bool) {
	for _, e := range n.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if k, ok := kv.Key.(*ast.Ident); ok && (k.Name == "Name" || k.Name == "Type") {
			if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				names[s] = true
			}
		}
	}
}

// kindPackage returns the directory of the package whose function f is.
func kindPackage(f any) string {
	name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	slash := strings.LastIndex(name, "/")
	pkg := name[:slash+strings.Index(name[slash:], ".")]
	return filepath.Join(repoRoot, strings.TrimPrefix(pkg, "github.com/rekeyhq/rekey/"))
}

// recorder is an hcl.Body that records the schema a plugin factory asks
// for. Every block type asked for is given once per label the README
// shows for it (so that auth "approle" { ... } is decoded too), with a
// recording body.
type recorder struct {
	names  map[string]bool
	labels map[string][]string
	pick   int
}

type recBody struct{ r *recorder }

func (b recBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, _, d := b.PartialContent(s)
	return c, d
}

func (b recBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c := &hcl.BodyContent{Attributes: hcl.Attributes{}}
	for _, a := range s.Attributes {
		b.r.names[a.Name] = true
	}
	for _, bl := range s.Blocks {
		b.r.names[bl.Type] = true
		labels := make([]string, len(bl.LabelNames))
		if ls := b.r.labels[bl.Type]; len(ls) > 0 && len(labels) > 0 {
			labels[0] = ls[b.r.pick%len(ls)]
		}
		c.Blocks = append(c.Blocks, &hcl.Block{Type: bl.Type, Labels: labels, Body: recBody{b.r}})
	}
	return c, recBody{b.r}, nil
}

func (b recBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) { return hcl.Attributes{}, nil }
func (b recBody) MissingItemRange() hcl.Range                       { return hcl.Range{} }

// decodedNames runs a factory on a recording body and returns the names of
// the attributes and blocks it asked for.
func decodedNames(heading string, factory any, labels map[string][]string) map[string]bool {
	r := &recorder{names: map[string]bool{}, labels: labels}
	variants := 1
	for _, ls := range labels {
		variants = max(variants, len(ls))
	}
	for r.pick = 0; r.pick < variants; r.pick++ {
		env := &plugin.Env{Policy: "readme", Kind: "readme", EvalContext: &hcl.EvalContext{}, Connections: plugin.NewConnections(), BaseDir: os.TempDir(), StateDir: os.TempDir()}
		func() {
			defer func() { _ = recover() }()
			body := recBody{r}
			switch f := factory.(type) {
			case plugin.ConnectionFactory:
				f(env, "readme", body)
			case providers.Factory:
				f(env, body)
			case sinks.Factory:
				f(env, body)
			case probes.Factory:
				f(env, body)
			case reloaders.Factory:
				f(env, body)
			case notifiers.Factory:
				f(env, body)
			default:
				panic(fmt.Sprintf("unknown factory type %T for a %s", factory, heading))
			}
		}()
	}
	return r.names
}

// blockLabels returns the labels a README section shows for block types:
// `auth "approle"` gives auth: [approle].
func blockLabels(section string) map[string][]string {
	out := map[string][]string{}
	for _, m := range regexp.MustCompile("`([a-z_]+) \"([a-z_]+)\"`").FindAllStringSubmatch(section, -1) {
		if !slices.Contains(out[m[1]], m[2]) {
			out[m[1]] = append(out[m[1]], m[2])
		}
	}
	return out
}

// importedNames adds the schema names of the module packages dir imports
// (shared decoders such as internal/command).
func importedNames(t *testing.T, dir string, names map[string]bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rel, ok := strings.CutPrefix(p, "github.com/rekeyhq/rekey/"); ok {
				maps.Copy(names, schemaNames(t, filepath.Join(repoRoot, rel)))
			}
		}
	}
}

// definedInTest reports whether the function f is declared in a _test.go
// file.
func definedInTest(f any) bool {
	fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer())
	file, _ := fn.FileLine(fn.Entry())
	return strings.HasSuffix(file, "_test.go")
}

type kindRef struct {
	heading string // README heading word: Provider, Sink, ...
	kind    string
	factory any
}

func registeredKinds() []kindRef {
	var out []kindRef
	add := func(heading string, kinds []string, lookup func(string) any) {
		for _, k := range kinds {
			out = append(out, kindRef{heading, k, lookup(k)})
		}
	}
	add("Connection", plugin.ConnectionKinds.Kinds(), func(k string) any { f, _ := plugin.ConnectionKinds.Lookup(k); return f })
	add("Provider", providers.Registry.Kinds(), func(k string) any { f, _ := providers.Registry.Lookup(k); return f })
	add("Sink", sinks.Registry.Kinds(), func(k string) any { f, _ := sinks.Registry.Lookup(k); return f })
	add("Probe", probes.Registry.Kinds(), func(k string) any { f, _ := probes.Registry.Lookup(k); return f })
	add("Reload", reloaders.Registry.Kinds(), func(k string) any { f, _ := reloaders.Registry.Lookup(k); return f })
	add("Notify", notifiers.Registry.Kinds(), func(k string) any { f, _ := notifiers.Registry.Lookup(k); return f })
	return out
}

// attributeHeaders are the first header cells of README tables that list
// attributes.
var attributeHeaders = []string{"Option", "Attribute", "Common attribute", "Setting"}

func TestReadmeAttributes(t *testing.T) {
	sections := readmeSections(t)
	core := schemaNames(t, filepath.Join(repoRoot, "policies"))
	maps.Copy(core, schemaNames(t, filepath.Join(repoRoot, "notifiers")))
	checked := 0
	for _, k := range registeredKinds() {
		if definedInTest(k.factory) {
			continue // a kind a test registers for itself
		}
		title := fmt.Sprintf("%s `%s`", k.heading, k.kind)
		section, ok := sections[title]
		if !ok {
			t.Errorf("%s kind %q has no README section: add a heading \"### %s\" with a table of its options", strings.ToLower(k.heading), k.kind, title)
			continue
		}
		dir := kindPackage(k.factory)
		decoded := decodedNames(k.heading, k.factory, blockLabels(section))
		have := schemaNames(t, dir)
		importedNames(t, dir, have)
		maps.Copy(have, decoded)
		first, inCells := tableNames(section, attributeHeaders...)
		var missing []string
		for n := range decoded {
			checked++
			if !first[n] && !inCells[n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		for _, n := range missing {
			t.Errorf("README section %q does not document attribute %q (decoded in %s): add a row | `%s` | type | default | meaning | to its options table", title, n, dir, n)
		}
		for n := range first {
			if !have[n] && !core[n] {
				t.Errorf("README section %q documents attribute %q, which kind %q does not decode (in %s): remove or rename the row", title, n, k.kind, dir)
			}
		}
	}
	// The core settings: the policies package's schemas against the
	// "Policy files" section.
	section := sections["Policy files"]
	if section == "" {
		t.Fatal("README has no \"## Policy files\" section")
	}
	first, inCells := tableNames(section, attributeHeaders...)
	connKinds := plugin.ConnectionKinds.Kinds()
	var missing []string
	for n := range core {
		checked++
		if !first[n] && !inCells[n] && !slices.Contains(connKinds, n) {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		t.Errorf("README \"Policy files\" does not document setting %q (decoded in policies/): add a row for it to the settings or attribute tables", n)
	}
	for n := range first {
		if !core[n] {
			t.Errorf("README \"Policy files\" documents %q, which the policies package does not decode: remove or rename the row", n)
		}
	}
	t.Logf("%d attributes of %d plugin kinds and the core settings checked", checked, len(registeredKinds()))
}

// --- metrics ---

var (
	metricName = regexp.MustCompile(`\brekey_[a-z0-9_]+\b`)
	// metricLike are names the README uses as metrics (Prometheus suffixes).
	metricLike = regexp.MustCompile(`^rekey_[a-z_]+_(seconds|total|info|successful|stuck|bucket|sum|count|bytes|ratio)$`)
)

func TestReadmeMetrics(t *testing.T) {
	dir := filepath.Join(repoRoot, "internal", "metrics")
	registered := map[string]bool{}
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				if metricName.MatchString(s) && metricName.FindString(s) == s {
					registered[s] = true
				}
			}
			return true
		})
	}
	if len(registered) < 5 {
		t.Fatalf("found only %d metric names in %s: is the scan broken?", len(registered), dir)
	}
	sections := readmeSections(t)
	table, _ := tableNames(sections["Metrics"], "Metric")
	for n := range registered {
		if !table[n] {
			t.Errorf("metric %s (registered in internal/metrics) is not in the README's metrics table: add a row | `%s` | type | labels | meaning |", n, n)
		}
	}
	b, _ := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	mentioned := map[string]bool{}
	for _, n := range metricName.FindAllString(string(b), -1) {
		if metricLike.MatchString(n) || table[n] {
			mentioned[n] = true
		}
	}
	for n := range mentioned {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if s, ok := strings.CutSuffix(n, suf); ok && registered[s] {
				base = s
			}
		}
		if !registered[base] && !table[base] {
			t.Errorf("the README names metric %s, which internal/metrics does not register", n)
		}
		if !registered[base] && table[base] {
			t.Errorf("the README's metrics table lists %s, which internal/metrics does not register: remove the row", n)
		}
	}
	t.Logf("%d registered metrics checked against the README, %d rekey_* names in the README", len(registered), len(mentioned))
}

// --- the test command ---

var (
	debianMissing = regexp.MustCompile(`missing\+=\(([^)]*)\)`)
	setupScript   = regexp.MustCompile(`testenv/([a-z0-9_-]+)/(?:build|install)\.sh`)
)

// TestReadmeTestCommandListsWhatItInstalls checks that the README's
// comment on `bash testenv/test-all.sh` names every Debian package the
// script installs and every test server it builds.
func TestReadmeTestCommandListsWhatItInstalls(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(repoRoot, "testenv", "test-all.sh"))
	if err != nil {
		t.Fatal(err)
	}
	section := readmeSections(t)["Two commands"]
	block, _, ok := strings.Cut(section, "bash testenv/test-all.sh")
	if !ok {
		t.Fatal(`README "Two commands" does not show bash testenv/test-all.sh`)
	}
	if i := strings.LastIndex(block, "\n\n"); i >= 0 {
		block = block[i:]
	}
	n := 0
	for _, m := range debianMissing.FindAllStringSubmatch(string(script), -1) {
		for _, pkg := range strings.Fields(m[1]) {
			n++
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(pkg) + `\b`).MatchString(block) {
				t.Errorf("testenv/test-all.sh installs the Debian package %s, but the README's comment on it (\"Two commands\") does not say so", pkg)
			}
		}
	}
	for _, m := range setupScript.FindAllStringSubmatch(string(script), -1) {
		n++
		if !strings.Contains(block, "("+m[1]+")") {
			t.Errorf("testenv/test-all.sh runs %s, but the README's comment on it (\"Two commands\") does not name it: add what it sets up, followed by (%s)", m[0], m[1])
		}
	}
	if n < 5 {
		t.Fatalf("found only %d things test-all.sh installs: is the scan broken?", n)
	}
}

// TestReadmeHasNoRepeatedPassages: a passage of six or more lines of prose
// that appears twice is an editing accident (two edits of one section
// merged), which leaves readers unsure which copy is true. Table rows may
// repeat (two plugins with the same option).
func TestReadmeHasNoRepeatedPassages(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	const n = 6
	first := map[string]int{}
	for i := 0; i+n <= len(lines); i++ {
		run := lines[i : i+n]
		prose := 0
		for _, l := range run {
			if l != "" && !strings.HasPrefix(l, "|") {
				prose += len(l)
			}
		}
		if prose < 200 {
			continue
		}
		key := strings.Join(run, "\n")
		if j, ok := first[key]; ok {
			t.Fatalf("README.md lines %d-%d repeat lines %d-%d:\n%s", i+1, i+n, j+1, j+n, key)
		}
		first[key] = i
	}
}
