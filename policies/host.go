package policies

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/plugin"
)

// The host checks: what a configuration refers to on this machine, checked
// by Loader.Load for `rekey validate` and `rekey run` (at start and on
// every reload) alike, with the same messages:
//
//   - policy files and directories: regular files, readable, not
//     changeable by other users (harden.CheckFile, harden.CheckDir);
//   - files plugins read (plugin.File, plugin.SecretFile): not changeable
//     by others, secret ones not readable by them either;
//   - commands plugins run (plugin.Command): they exist, are executable,
//     and neither they nor their directory can be changed by others;
//   - files plugins write (plugin.WrittenFile): not inside state_dir;
//   - state_dir: able to hold the journal (harden.CheckStateDir).
//
// The roles come from each kind's declaration (plugin.Declare) or the
// defaults (plugin.DefaultRole). Files that do not exist yet are left to
// the plugins that read them; commands must exist.

// hostProblem turns an error of the harden package into a diagnostic.
func hostProblem(subject *hcl.Range, summary string, err error) *hcl.Diagnostic {
	var insecure *harden.InsecureError
	if errors.As(err, &insecure) {
		summary = "Insecure " + strings.TrimPrefix(summary, "Bad ")
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: sentence(err), Subject: subject}
}

// checkConfigDir checks a directory whose *.hcl files are loaded: anyone
// who can write it can add a policy.
func checkConfigDir(dir string) hcl.Diagnostics {
	if err := harden.CheckDir(dir, harden.FileOptions{}); err != nil {
		return hcl.Diagnostics{hostProblem(nil, "Bad configuration directory", err)}
	}
	return nil
}

// checkConfigFile checks a policy file and, for a file named on its own,
// the directory holding it, which is fine when sticky (as /tmp): others
// can then not replace the file.
func checkConfigFile(name string, named bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if err := harden.CheckFile(name, harden.FileOptions{}); err != nil {
		diags = append(diags, hostProblem(nil, "Bad policy file", err))
	}
	if named {
		dir := filepath.Dir(name)
		if fi, err := os.Stat(dir); err == nil && fi.Mode()&fs.ModeSticky == 0 {
			if err := harden.CheckDir(dir, harden.FileOptions{}); err != nil {
				diags = append(diags, hostProblem(nil, "Bad configuration directory", err))
			}
		}
	}
	return diags
}

// checkHost checks what the parsed files refer to. It reads the syntax, not
// the decoded plugins, so it runs whatever else is wrong.
func (ld *loading) checkHost() {
	for _, f := range ld.files {
		for _, blk := range f.body.Blocks {
			ld.hostBlock(f, blk, blockOwner(blk, declOwner{}, 0), 1)
		}
	}
	if err := harden.CheckStateDir(ld.cfg.StateDir); err != nil {
		ld.diags = append(ld.diags, hostProblem(ld.stateDirRange, "Bad state_dir", err))
	}
}

func (ld *loading) hostBlock(f *file, blk *hclsyntax.Block, o declOwner, depth int) {
	for _, attr := range sortedAttributes(blk.Body) {
		if o.block == "policy" && depth == 1 {
			continue
		}
		role := plugin.Role(o.block, o.kind, attr.Name)
		if role&(plugin.File|plugin.Command|plugin.WrittenFile) == 0 {
			continue
		}
		v, diags := attr.Expr.Value(f.ctx)
		if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
			continue
		}
		r := attr.Expr.Range()
		switch {
		case role&plugin.Command != 0:
			ld.checkCommand(f, attr.Name, v, &r)
		case v.Type() != cty.String || v.AsString() == "":
		case role&plugin.WrittenFile != 0:
			ld.checkWritten(f, attr.Name, v.AsString(), &r)
		default:
			ld.checkReadFile(f, attr.Name, v.AsString(), role&plugin.SecretFile != 0, &r)
		}
	}
	for _, inner := range blk.Body.Blocks {
		ld.hostBlock(f, inner, blockOwner(inner, o, depth), depth+1)
	}
}

func (f *file) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(f.dir, p)
}

func (ld *loading) checkReadFile(f *file, attr, p string, secret bool, r *hcl.Range) {
	p = f.path(p)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err := harden.CheckFile(p, harden.FileOptions{Secret: secret}); err != nil {
		ld.diags = append(ld.diags, hostProblem(r, "Bad file in "+attr, err))
	}
}

func (ld *loading) checkCommand(f *file, attr string, v cty.Value, r *hcl.Range) {
	if !v.CanIterateElements() || v.LengthInt() == 0 {
		return
	}
	first := v.Index(cty.NumberIntVal(0))
	if first.Type() != cty.String || first.IsNull() || strings.TrimSpace(first.AsString()) == "" {
		return
	}
	prog := first.AsString()
	path := prog
	if !strings.ContainsAny(prog, `/\`) {
		found, err := ld.host.lookPath(prog)
		if err != nil {
			ld.diags = append(ld.diags, errAt(*r, "Command not found", fmt.Sprintf("The program %q of %s is not found in PATH (%s). Give its full path, or install it; run validate with the daemon's environment.", prog, attr, os.Getenv("PATH"))))
			return
		}
		path = found
	} else {
		path = f.path(prog)
	}
	err := ld.host.checkExecutable(path)
	var notExec *harden.NotExecutableError
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		ld.diags = append(ld.diags, errAt(*r, "Command not found", fmt.Sprintf("The program %s of %s does not exist. Create it or correct the path (a relative path is relative to the directory of the policy file).", path, attr)))
	case errors.As(err, &notExec):
		ld.diags = append(ld.diags, errAt(*r, "Command not executable", sentence(err)))
	default:
		ld.diags = append(ld.diags, hostProblem(r, "Bad command", err))
	}
}

func (ld *loading) checkWritten(f *file, attr, p string, r *hcl.Range) {
	p = f.path(p)
	state := ld.cfg.StateDir
	if inside(p, state) || inside(ld.host.realPath(p), ld.host.realPath(state)) {
		ld.diags = append(ld.diags, errAt(*r, "File inside state_dir", fmt.Sprintf("%s (%s) lies inside the state directory %s, which holds rekey's journal and lock; writing there could destroy them. Choose a path outside it.", attr, p, state)))
	}
}

// inside reports whether p is dir or lies under it.
func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// realPath resolves the symbolic links of the longest existing prefix of p.
func realPath(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// hostCache remembers, for one load, the programs found in PATH, the
// executables checked and the directories resolved: 10,000 policies
// running the same probe command check it once.
type hostCache struct {
	found map[string]lookResult
	execs map[string]error
	real  map[string]string
}

type lookResult struct {
	path string
	err  error
}

func (c *hostCache) lookPath(prog string) (string, error) {
	if r, ok := c.found[prog]; ok {
		return r.path, r.err
	}
	p, err := exec.LookPath(prog)
	if c.found == nil {
		c.found = map[string]lookResult{}
	}
	c.found[prog] = lookResult{p, err}
	return p, err
}

func (c *hostCache) checkExecutable(path string) error {
	if err, ok := c.execs[path]; ok {
		return err
	}
	err := harden.CheckExecutable(path)
	if c.execs == nil {
		c.execs = map[string]error{}
	}
	c.execs[path] = err
	return err
}

// realPath is realPath with the resolution of each directory cached.
func (c *hostCache) realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	dir := filepath.Dir(p)
	if dir == p {
		return p
	}
	r, ok := c.real[dir]
	if !ok {
		r = realPath(dir)
		if c.real == nil {
			c.real = map[string]string{}
		}
		c.real[dir] = r
	}
	return filepath.Join(r, filepath.Base(p))
}
