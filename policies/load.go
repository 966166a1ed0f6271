package policies

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
)

// Defaults of the settings a configuration may leave out.
const (
	DefaultStateDir  = "/var/lib/rekey"
	DefaultListen    = "127.0.0.1:9464"
	DefaultLogLevel  = "info"
	DefaultLogFormat = "auto"
)

// Loader reads policy files. It keeps the sources it read so that
// diagnostics can be shown with source snippets; a Loader is not safe for
// concurrent use, use one per load.
type Loader struct {
	// LookupEnv resolves env("NAME"); nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)

	files map[string]*hcl.File
	// skipHostChecks leaves out the checks of the host (file ownership and
	// permissions, commands, state_dir) in tests of other things.
	skipHostChecks bool
}

// NewLoader returns a Loader reading the process environment.
func NewLoader() *Loader { return &Loader{} }

// Load reads the configuration at paths with a new Loader; see
// Loader.Load. Use a Loader to render the diagnostics with snippets.
func Load(paths ...string) (*Config, hcl.Diagnostics) {
	return NewLoader().Load(paths...)
}

// Files returns the sources read by the last load, keyed by file name, for
// WriteDiagnostics and DiagnosticsJSON. Literal secrets found in them are
// masked with '*'.
func (l *Loader) Files() map[string]*hcl.File { return l.files }

// Load reads every path in order: a directory contributes each *.hcl file
// directly inside it in lexical order (not recursively; other files and
// names starting with a dot are ignored), a file is read whatever its name.
// The configuration is returned only when the diagnostics hold no error;
// they may hold warnings either way.
//
// Load also runs the host checks (see host.go): the ownership and
// permissions of the files and directories read, of the files plugins
// read and of the commands they run, and whether state_dir can hold the
// journal. `rekey validate` and `rekey run` both load with it, so that
// they accept and refuse the same configurations with the same messages.
func (l *Loader) Load(paths ...string) (*Config, hcl.Diagnostics) {
	l.files = map[string]*hcl.File{}
	names, diags := l.listFiles(paths)
	var srcs []source
	for _, name := range names {
		b, err := readPolicyFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read policy file",
				Detail:   fmt.Sprintf("Reading %s failed: %v.", name, cause(err)),
			})
			continue
		}
		srcs = append(srcs, source{name: name, src: b})
	}
	if len(srcs) == 0 {
		return nil, diags
	}
	cfg, more := l.load(srcs, !l.skipHostChecks)
	diags = append(diags, more...)
	if diags.HasErrors() {
		if cfg != nil {
			_ = cfg.Connections.Close()
		}
		return nil, diags
	}
	if path := configPath(paths); path != "" {
		for _, p := range cfg.Policies {
			p.ConfigPath = path
		}
	}
	return cfg, diags
}

// configPath is the configuration path an operator passes back with
// -config, absolute so that it works from any directory: empty for
// DefaultPath or when several paths were read.
func configPath(paths []string) string {
	if len(paths) != 1 {
		return ""
	}
	abs, err := filepath.Abs(paths[0])
	if err != nil || abs == DefaultPath {
		return ""
	}
	return abs
}

// LoadSources loads a configuration from in-memory files, taken in the
// lexical order of their names; relative paths in them resolve against
// the directory part of each name. It is Load without the file system
// listing and the host checks, for tests and fuzzing.
func (l *Loader) LoadSources(files map[string][]byte) (*Config, hcl.Diagnostics) {
	l.files = map[string]*hcl.File{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	srcs := make([]source, len(names))
	for i, n := range names {
		srcs[i] = source{name: n, src: files[n]}
	}
	return l.load(srcs, false)
}

type source struct {
	name string
	src  []byte
}

// listFiles lists the policy files of paths. Every *.hcl entry of a
// directory must be a readable regular file (or a link to one): a
// dangling link, a FIFO or a directory named x.hcl is an error, not a
// skip, so that a policy cannot disappear silently. With host checks it
// also checks the files and directories (checkConfigDir,
// checkConfigFile).
func (l *Loader) listFiles(paths []string) ([]string, hcl.Diagnostics) {
	var (
		names []string
		diags hcl.Diagnostics
		seen  = map[string]bool{}
	)
	add := func(n string) {
		if c := filepath.Clean(n); !seen[c] {
			seen[c] = true
			names = append(names, n)
		}
	}
	if len(paths) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No configuration path", Detail: "Name a policy file or a directory of *.hcl files."}}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read configuration",
				Detail:   fmt.Sprintf("Reading %s failed: %v. Name a policy file or a directory of *.hcl files.", p, cause(err)),
			})
			continue
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() {
				diags = append(diags, notRegular(p, st.Mode()))
				continue
			}
			if !l.skipHostChecks {
				diags = append(diags, checkConfigFile(p, true)...)
			}
			add(p)
			continue
		}
		if !l.skipHostChecks {
			diags = append(diags, checkConfigDir(p)...)
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read configuration directory",
				Detail:   fmt.Sprintf("Listing %s failed: %v.", p, cause(err)),
			})
			continue
		}
		n := 0
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".hcl") || strings.HasPrefix(name, ".") {
				continue
			}
			full := filepath.Join(p, name)
			n++
			fi, err := os.Stat(full)
			switch {
			case err != nil:
				detail := fmt.Sprintf("Reading %s failed: %v.", full, cause(err))
				if errors.Is(err, fs.ErrNotExist) {
					detail = fmt.Sprintf("%s is a symbolic link to a file that does not exist. Restore the file or remove the link: every *.hcl entry of %s is a policy file.", full, p)
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read policy file", Detail: detail})
				continue
			case !fi.Mode().IsRegular():
				diags = append(diags, notRegular(full, fi.Mode()))
				continue
			}
			if !l.skipHostChecks {
				diags = append(diags, checkConfigFile(full, false)...)
			}
			add(full)
		}
		if n == 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No policy files",
				Detail:   fmt.Sprintf("The directory %s holds no *.hcl file.%s", p, subdirHint(p, entries)),
			})
		}
	}
	return names, diags
}

// file is one parsed source file and what its expressions are evaluated
// with.
type file struct {
	name    string
	body    *hclsyntax.Body
	dir     string
	ctx     *hcl.EvalContext
	content *hcl.BodyContent
}

// loading is the state of one load.
type loading struct {
	files []*file
	order map[string]int
	cfg   *Config
	diags hcl.Diagnostics
	// stateDirRange is where state_dir was set, nil for the default.
	stateDirRange *hcl.Range
	// host caches what the host checks found out, for the many policies
	// naming the same programs and directories.
	host hostCache
}

func (l *Loader) load(srcs []source, host bool) (*Config, hcl.Diagnostics) {
	lookup := l.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	ld := &loading{order: map[string]int{}, cfg: &Config{
		StateDir:         DefaultStateDir,
		Log:              LogSettings{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Connections:      plugin.NewConnections(),
		ConnectionLabels: map[string]Labels{},
	}}
	for i, p := range parseAll(srcs, lookup) {
		s := srcs[i]
		ld.order[s.name] = i
		ld.diags = append(ld.diags, p.diags...)
		if p.shown != nil {
			l.files[s.name] = p.shown
		}
		if p.file != nil {
			ld.files = append(ld.files, p.file)
			ld.cfg.Files = append(ld.cfg.Files, s.name)
		}
	}
	// Syntax errors make everything after them guesswork, and a secret
	// literal must not reach a plugin that might quote it.
	if !ld.diags.HasErrors() {
		ld.decode()
		if host {
			ld.checkHost()
		}
	}
	ld.dropCascades()
	ld.sortDiagnostics()
	ld.limitDiagnostics()
	if ld.diags.HasErrors() {
		_ = ld.cfg.Connections.Close()
		return nil, ld.diags
	}
	return ld.cfg, ld.diags
}

// parsed is one source after parsing: its diagnostics, the file shown in
// diagnostics (secrets masked), and the file to decode, if any.
type parsed struct {
	diags hcl.Diagnostics
	shown *hcl.File
	file  *file
}

// parseAll parses the sources in parallel (one worker per CPU); the
// results are in the order of srcs.
func parseAll(srcs []source, lookup func(string) (string, bool)) []parsed {
	out := make([]parsed, len(srcs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(srcs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = parseSource(srcs[i], lookup)
			}
		}()
	}
	for i := range srcs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func parseSource(s source, lookup func(string) (string, bool)) parsed {
	if diags := scanBounds(s.name, s.src); diags.HasErrors() {
		src := s.src
		if len(src) > MaxFileSize {
			src = src[:4096]
		}
		return parsed{diags: diags, shown: &hcl.File{Body: &hclsyntax.Body{}, Bytes: sanitizeSource(src)}}
	}
	f, diags := hclsyntax.ParseConfig(s.src, s.name, hcl.InitialPos)
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return parsed{diags: diags}
	}
	secretDiags, mask := scanSecrets(body)
	diags = append(diags, secretDiags...)
	shown := &hcl.File{Body: f.Body, Bytes: sanitizeSource(maskSource(f.Bytes, mask)), Nav: f.Nav}
	dir, err := filepath.Abs(filepath.Dir(s.name))
	if err != nil {
		dir = filepath.Dir(s.name)
	}
	return parsed{diags: diags, shown: shown, file: &file{name: s.name, body: body, dir: dir, ctx: evalContext(dir, filepath.Dir(s.name), lookup)}}
}

func (ld *loading) decode() {
	schema := topSchema()
	for _, f := range ld.files {
		content, diags := f.body.Content(schema)
		ld.diags = append(ld.diags, diags...)
		f.content = content
	}
	ld.decodeSettings()
	ld.decodeConnections()
	ld.decodePolicies()
	if len(ld.cfg.Policies) == 0 && !ld.diags.HasErrors() {
		ld.diags = append(ld.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "No policies",
			Detail:   "The configuration defines no policy block, so rekey has nothing to rotate.",
		})
	}
}

// reservedTopLevel are the top-level names that are not connection kinds.
var reservedTopLevel = map[string]bool{"state_dir": true, "disable_mlock": true, "log": true, "server": true, "policy": true, "guard": true, "journal": true}

func topSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "state_dir"}, {Name: "disable_mlock"}},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "log"},
			{Type: "server"},
			{Type: "guard"},
			{Type: "journal", LabelNames: []string{"kind"}},
			{Type: "policy", LabelNames: []string{"name"}},
		},
	}
	for _, k := range plugin.ConnectionKinds.Kinds() {
		if !reservedTopLevel[k] {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: k, LabelNames: []string{"name"}})
		}
	}
	return s
}

func (ld *loading) decodeSettings() {
	var stateDir, mlock, logBlock, serverBlock, journalBlock *hcl.Range
	for _, f := range ld.files {
		if f.content == nil {
			continue
		}
		if attr, ok := f.content.Attributes["disable_mlock"]; ok {
			if mlock != nil {
				ld.diags = append(ld.diags, duplicate(attr.NameRange, *mlock, "disable_mlock setting", "disable_mlock may be set once, in one file."))
			} else {
				mlock = attr.NameRange.Ptr()
				ld.diags = append(ld.diags, gohcl.DecodeExpression(attr.Expr, f.ctx, &ld.cfg.DisableMlock)...)
			}
		}
		if attr, ok := f.content.Attributes["state_dir"]; ok {
			if stateDir != nil {
				ld.diags = append(ld.diags, duplicate(attr.NameRange, *stateDir, "state_dir setting", "state_dir may be set once, in one file."))
			} else {
				stateDir = attr.NameRange.Ptr()
				var dir string
				if ld.decodeString(attr, f.ctx, &dir) {
					if dir == "" {
						ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid state_dir", "state_dir must not be empty; it is the directory of rekey's journal, such as \"/var/lib/rekey\"."))
					} else {
						if !filepath.IsAbs(dir) {
							dir = filepath.Join(f.dir, dir)
						}
						ld.cfg.StateDir = filepath.Clean(dir)
						ld.stateDirRange = attr.Expr.Range().Ptr()
					}
				}
			}
		}
		for _, blk := range f.content.Blocks {
			switch blk.Type {
			case "log":
				if logBlock != nil {
					ld.diags = append(ld.diags, duplicate(blk.DefRange, *logBlock, "log block", "Only one log block is allowed in the whole configuration."))
					continue
				}
				logBlock = blk.DefRange.Ptr()
				ld.decodeLog(blk, f)
			case "server":
				if serverBlock != nil {
					ld.diags = append(ld.diags, duplicate(blk.DefRange, *serverBlock, "server block", "Only one server block is allowed in the whole configuration."))
					continue
				}
				serverBlock = blk.DefRange.Ptr()
				ld.decodeServer(blk, f)
			case "guard":
				ld.decodeGuard(blk, f)
			case "journal":
				if journalBlock != nil {
					ld.diags = append(ld.diags, duplicate(blk.DefRange, *journalBlock, "journal block", "Only one journal block is allowed in the whole configuration."))
					continue
				}
				journalBlock = blk.DefRange.Ptr()
				ld.decodeJournal(blk, f)
			}
		}
	}
}

var logLevels = []string{"trace", "debug", "info", "warn", "error"}
var logFormats = []string{"auto", "json", "console"}

func (ld *loading) decodeLog(blk *hcl.Block, f *file) {
	content, diags := blk.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "level"}, {Name: "format"}}})
	ld.diags = append(ld.diags, diags...)
	if attr, ok := content.Attributes["level"]; ok {
		var v string
		if ld.decodeString(attr, f.ctx, &v) {
			if slices.Contains(logLevels, v) {
				ld.cfg.Log.Level = v
			} else {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid log level", fmt.Sprintf("The log level %q is not known.%s Use one of %s.", v, didYouMean(v, logLevels), strings.Join(logLevels, ", "))))
			}
		}
	}
	if attr, ok := content.Attributes["format"]; ok {
		var v string
		if ld.decodeString(attr, f.ctx, &v) {
			if slices.Contains(logFormats, v) {
				ld.cfg.Log.Format = v
			} else {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid log format", fmt.Sprintf("The log format %q is not known.%s Use auto (console on a terminal, JSON otherwise), json or console.", v, didYouMean(v, logFormats))))
			}
		}
	}
}

func (ld *loading) decodeServer(blk *hcl.Block, f *file) {
	content, diags := blk.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "listen"}}})
	ld.diags = append(ld.diags, diags...)
	srv := &Server{Listen: DefaultListen}
	if attr, ok := content.Attributes["listen"]; ok {
		var v string
		if ld.decodeString(attr, f.ctx, &v) {
			if problem := checkListen(v); problem != "" {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid listen address", problem))
			} else {
				srv.Listen = v
			}
		}
	}
	ld.cfg.Server = srv
}

var connectionName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)

func (ld *loading) decodeConnections() {
	seen := map[string]hcl.Range{}
	for _, f := range ld.files {
		if f.content == nil {
			continue
		}
		for _, blk := range f.content.Blocks {
			if reservedTopLevel[blk.Type] || len(blk.Labels) != 1 {
				continue
			}
			factory, ok := plugin.ConnectionKinds.Lookup(blk.Type)
			if !ok {
				continue
			}
			name := blk.Labels[0]
			if !connectionName.MatchString(name) {
				// Reported; the block is still decoded, for its own
				// problems.
				ld.diags = append(ld.diags, errAt(blk.LabelRanges[0], "Invalid connection name", fmt.Sprintf("The connection name %s is not valid: it is used in references such as %s.main, so it must start with a letter or underscore and hold only letters, digits, underscores and dashes.", quoteShort(name), blk.Type)))
			}
			key := blk.Type + "." + name
			if prev, dup := seen[key]; dup {
				ld.diags = append(ld.diags, duplicate(blk.DefRange, prev, "connection", fmt.Sprintf("%s connection named %s is already declared; connection names are unique per kind across all files.", plugin.Article(blk.Type, true), quoteShort(name))))
				continue
			}
			seen[key] = blk.DefRange
			env := &plugin.Env{
				Kind:        blk.Type,
				DefRange:    blk.DefRange,
				BaseDir:     f.dir,
				StateDir:    ld.cfg.StateDir,
				EvalContext: f.ctx,
				Connections: ld.cfg.Connections,
			}
			common, remain, diags := blk.Body.PartialContent(labelsSchema)
			ld.diags = append(ld.diags, diags...)
			if a, ok := common.Attributes["labels"]; ok {
				ld.cfg.ConnectionLabels[key] = ld.decodeLabels(a, f.ctx)
			}
			conn, diags := factory(env, name, suggestingBody{remain, labelsSchema})
			ld.diags = append(ld.diags, diags...)
			if !diags.HasErrors() {
				ld.cfg.Connections.Add(blk.Type, name, conn)
			}
		}
	}
}

// MaxDiagnostics bounds the diagnostics of one load: a file of binary junk
// yields one per byte, each with a snippet of the same line.
const MaxDiagnostics = 100

func (ld *loading) limitDiagnostics() {
	if len(ld.diags) <= MaxDiagnostics {
		return
	}
	d := &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Too many problems",
		Detail:   fmt.Sprintf("Only the first %d of %d problems are shown. Fix them and check again.", MaxDiagnostics, len(ld.diags)),
	}
	if ld.diags.HasErrors() {
		d.Severity = hcl.DiagError
	}
	ld.diags = append(ld.diags[:MaxDiagnostics:MaxDiagnostics], d)
}

// dropCascades removes gohcl's "value must be known" errors about an
// expression that already has an error of its own (an env() of an unset
// variable, a reference where none is allowed): they repeat it vaguely.
func (ld *loading) dropCascades() {
	region := func(d *hcl.Diagnostic) hcl.Range {
		if d.Context != nil {
			return hcl.RangeOver(*d.Context, *d.Subject)
		}
		return *d.Subject
	}
	if !slices.ContainsFunc(ld.diags, isUnknownValueCascade) {
		return
	}
	var errored []hcl.Range
	for _, d := range ld.diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && !isUnknownValueCascade(d) {
			errored = append(errored, region(d))
		}
	}
	ld.diags = slices.DeleteFunc(ld.diags, func(d *hcl.Diagnostic) bool {
		if !isUnknownValueCascade(d) || d.Subject == nil {
			return false
		}
		r := region(d)
		return slices.ContainsFunc(errored, func(e hcl.Range) bool {
			return e.Filename == r.Filename && e.Overlaps(r)
		})
	})
}

func isUnknownValueCascade(d *hcl.Diagnostic) bool {
	return d.Summary == "Unsuitable value type" && strings.HasSuffix(d.Detail, "value must be known")
}

func (ld *loading) sortDiagnostics() {
	rank := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return -1, 0
		}
		o, ok := ld.order[d.Subject.Filename]
		if !ok {
			o = len(ld.order)
		}
		return o, d.Subject.Start.Byte
	}
	slices.SortStableFunc(ld.diags, func(a, b *hcl.Diagnostic) int {
		af, ab := rank(a)
		bf, bb := rank(b)
		return cmp.Or(cmp.Compare(af, bf), cmp.Compare(ab, bb))
	})
}

// decodeString evaluates attr as a string; it reports false after
// recording a diagnostic.
func (ld *loading) decodeString(attr *hcl.Attribute, ctx *hcl.EvalContext, v *string) bool {
	diags := decodeExpr(attr.Expr, ctx, v)
	ld.diags = append(ld.diags, diags...)
	return !diags.HasErrors()
}

func errAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()}
}

func warnAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: detail, Subject: r.Ptr()}
}

// duplicate reports a second definition at r of what was first defined at
// prev.
func duplicate(r, prev hcl.Range, what, detail string) *hcl.Diagnostic {
	return errAt(r, "Duplicate "+what, fmt.Sprintf("%s Previous definition was at %s.", detail, pos(prev)))
}

// pos renders the start of r as FILE:LINE:COL, as diagnostics are shown.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// didYouMean returns ` Did you mean "x"?` for the option closest to given,
// if one is close enough to be a typo, and "" otherwise.
func didYouMean(given string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if d := levenshtein.Distance(given, o, nil); d < bestDist {
			best, bestDist = o, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// quoteShort quotes s as %q does, cut to 80 bytes: names in messages may
// be anything a file holds.
func quoteShort(s string) string {
	if len(s) <= 80 {
		return fmt.Sprintf("%q", s)
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

// sortedAttributes returns the attributes of b in source order.
func sortedAttributes(b *hclsyntax.Body) []*hclsyntax.Attribute {
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int {
		return cmp.Compare(x.SrcRange.Start.Byte, y.SrcRange.Start.Byte)
	})
	return attrs
}

func notRegular(p string, mode fs.FileMode) *hcl.Diagnostic {
	what := "not a regular file"
	switch {
	case mode.IsDir():
		what = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		what = "a FIFO"
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	case mode&fs.ModeDevice != 0:
		what = "a device"
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Not a policy file",
		Detail:   fmt.Sprintf("%s is %s, not a regular file. Every *.hcl entry of a configuration directory is read as a policy file; rename or remove it.", p, what),
	}
}

// subdirHint names the subdirectories of dir that hold *.hcl files (rekey
// reads one directory, not the ones below it), as a sentence, or "".
func subdirHint(dir string, entries []fs.DirEntry) string {
	var found []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.hcl")); len(m) > 0 {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	switch {
	case len(found) == 0:
		return ""
	case len(found) == 1:
		return fmt.Sprintf(" Policy files are read from the directory named, not from the ones below it: did you mean %s?", found[0])
	}
	return fmt.Sprintf(" Policy files are read from the directory named, not from the ones below it; %d of its subdirectories hold *.hcl files (%s, ...): name each configuration; rekey validate %s checks them all.", len(found), found[0], filepath.Join(dir, "*")+string(filepath.Separator))
}
