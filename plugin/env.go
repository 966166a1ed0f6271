package plugin

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// Env is what a plugin factory receives besides its block body: the
// evaluation context for expressions (functions such as env() and file()),
// the named connections declared at the top level, and where the block
// came from. Factories must not perform I/O against outside services; they
// decode, validate and construct.
type Env struct {
	// Policy is the name of the policy the block belongs to.
	Policy string
	// Kind is the block label, e.g. "aws_iam".
	Kind string
	// DefRange is the block's definition range, for diagnostics.
	DefRange hcl.Range
	// BaseDir is the directory of the file the block is in; relative
	// paths in plugin options resolve against it.
	BaseDir string
	// StateDir is the daemon's state directory (for plugins that keep
	// non-secret bookkeeping, never values).
	StateDir string
	// EvalContext evaluates attribute expressions.
	EvalContext *hcl.EvalContext
	// Connections resolves references such as vault.main.
	Connections *Connections
}

// Decode decodes body into v (a struct with hcl tags) strictly: unknown
// attributes and blocks are errors, with a suggestion where one is close.
func (e *Env) Decode(body hcl.Body, v any) hcl.Diagnostics {
	return gohcl.DecodeBody(body, e.EvalContext, v)
}

// Path resolves a path option relative to the file the block is in.
func (e *Env) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || e.BaseDir == "" {
		return p
	}
	return filepath.Join(e.BaseDir, p)
}

// Connection resolves expr, which must be a reference of the form
// KIND.NAME (for example vault.main), to a connection declared at the top
// level with a block `KIND "NAME" { ... }`.
func (e *Env) Connection(expr hcl.Expression, kind string) (any, hcl.Diagnostics) {
	trav, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() || len(trav) != 2 || trav.RootName() != kind {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid connection reference",
			Detail:   fmt.Sprintf("Expected a reference to a %s connection, such as %s.main, naming a top-level block %s \"main\" { ... }.", kind, kind, kind),
			Subject:  expr.Range().Ptr(),
		}}
	}
	name := ""
	if a, ok := trav[1].(hcl.TraverseAttr); ok {
		name = a.Name
	}
	if e.Connections == nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown connection",
			Detail:   fmt.Sprintf("No %s connection %q is declared. Declare it at the top level: %s %q { ... }.", kind, name, kind, name),
			Subject:  expr.Range().Ptr(),
		}}
	}
	c, ok := e.Connections.Get(kind, name)
	if !ok {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown connection",
			Detail:   fmt.Sprintf("No %s connection %q is declared. Declare it at the top level: %s %q { ... }.", kind, name, kind, name),
			Subject:  expr.Range().Ptr(),
		}}
	}
	return c, nil
}

// Subject returns r as a diagnostic subject, or the block's definition
// range when r is empty (an optional attribute that was not written), so
// that every diagnostic of a plugin points at source.
func (e *Env) Subject(r hcl.Range) *hcl.Range {
	if r.Filename == "" {
		return e.DefRange.Ptr()
	}
	return r.Ptr()
}
