package http

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/plugin"
)

// Template variables.
const (
	VarRotationID = "RotationID"
	VarPolicy     = "Policy"
	VarGeneration = "Generation"
	VarKeyID      = "KeyID"
	VarOldKeyID   = "OldKeyID"
	VarToken      = "Token"
	// VarKeyTTL, VarExpiresAt and VarExpiresAtUnix are the lifetime a
	// policy asks new keys to be created with (key_ttl): in seconds, and
	// the time it ends as RFC 3339 and as seconds since 1970; "" without
	// key_ttl, so that a create body writes them under {{ if .KeyTTL }}.
	VarKeyTTL        = "KeyTTL"
	VarExpiresAt     = "ExpiresAt"
	VarExpiresAtUnix = "ExpiresAtUnix"
)

// funcs are the functions templates may call.
var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"query":  func(s string) string { return escapeAll(s) },
	"base64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
}

// Template is a request part (path, header value, body) with variables
// such as {{ .RotationID }}.
type Template struct {
	Text string
	t    *template.Template
	uses map[string]bool
}

// Uses reports whether the template refers to the variable.
func (t *Template) Uses(v string) bool { return t != nil && t.uses[v] }

// Render fills the template in.
func (t *Template) Render(vars map[string]string) (string, error) {
	data := make(map[string]any, len(vars))
	for k, v := range vars {
		data[k] = v
	}
	var b strings.Builder
	if err := t.t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// MustTemplate parses a template written in Go (by a provider built on
// this one); it panics on a mistake.
func MustTemplate(text string) *Template {
	t, err := template.New("t").Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		panic(err)
	}
	uses := map[string]bool{}
	walk(t.Root, func(name string, _ parse.Pos) { uses[name] = true })
	return &Template{Text: text, t: t, uses: uses}
}

// templateAttr evaluates an optional string attribute and parses it as a
// template whose variables must be among allowed. Errors point at the
// variable in the source where the string is written on one line.
func templateAttr(env *plugin.Env, expr hcl.Expression, what string, allowed []string) (*Template, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	v, diags := expr.Value(env.EvalContext)
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	if !v.IsKnown() || v.Type() != cty.String {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + what, Detail: what + " must be a string.", Subject: expr.Range().Ptr()}}
	}
	return parseTemplate(v.AsString(), expr, what, allowed)
}

func parseTemplate(text string, expr hcl.Expression, what string, allowed []string) (*Template, hcl.Diagnostics) {
	t, err := template.New(what).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, what+":"); i >= 0 {
			msg = msg[i+len(what)+1:]
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid template in " + what,
			Detail:   fmt.Sprintf("The %s does not parse as a template (line:%s). Templates use {{ .RotationID }}, {{ .Policy }}, ...; functions: json, query, base64.", what, msg),
			Subject:  expr.Range().Ptr(),
		}}
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	uses := map[string]bool{}
	var diags hcl.Diagnostics
	walk(t.Root, func(name string, pos parse.Pos) {
		uses[name] = true
		if ok[name] {
			return
		}
		names := append([]string(nil), allowed...)
		sort.Strings(names)
		list := "none"
		if len(names) > 0 {
			list = "." + strings.Join(names, ", .")
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown template variable",
			Detail:   fmt.Sprintf("The %s refers to .%s, which is not a variable here. Variables available in the %s: %s.", what, name, what, list),
			Subject:  posIn(expr, text, int(pos)).Ptr(),
		})
	})
	if diags.HasErrors() {
		return nil, diags
	}
	return &Template{Text: text, t: t, uses: uses}, nil
}

// walk calls fn for each variable (.Name or $.Name) the template uses.
func walk(n parse.Node, fn func(string, parse.Pos)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, fn)
		}
	case *parse.ActionNode:
		walk(n.Pipe, fn)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walk(c, fn)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, fn)
		}
	case *parse.FieldNode:
		fn(n.Ident[0], n.Pos)
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			fn(n.Ident[1], n.Pos)
		}
	case *parse.ChainNode:
		walk(n.Node, fn)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(string, parse.Pos)) {
	walk(b.Pipe, fn)
	walk(b.List, fn)
	walk(b.ElseList, fn)
}

// posIn maps a byte offset in a template to its source position, exactly
// when the string is a plain literal whose source bytes are its value,
// else the start of the expression.
func posIn(expr hcl.Expression, text string, off int) hcl.Range {
	r := expr.Range()
	te, ok := expr.(*hclsyntax.TemplateExpr)
	if !ok || len(te.Parts) != 1 || off < 0 || off > len(text) {
		return r
	}
	lit, ok := te.Parts[0].(*hclsyntax.LiteralValueExpr)
	if !ok {
		return r
	}
	lr := lit.Range()
	if lr.End.Byte-lr.Start.Byte != len(text) || strings.Contains(text, "\n") {
		return r
	}
	start := lr.Start
	start.Byte += off
	start.Column += off
	end := start
	end.Byte++
	end.Column++
	return hcl.Range{Filename: r.Filename, Start: start, End: end}
}

// escapeAll percent-encodes every byte but letters, digits and -._~, so a
// value is safe in a URL path segment and in a query alike.
func escapeAll(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
