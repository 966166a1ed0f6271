package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Labels are the `labels = { env = "prod", team = "payments" }` of a
// policy or a connection: short names and values that select policies and
// keep environments apart (guard blocks).
type Labels map[string]string

var labelPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

// labelsSchema is the attribute the loader takes from connection blocks
// before the connection kind decodes the rest.
var labelsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "labels"}}}

// decodeLabels evaluates a labels attribute; names and values are 1 to 63
// letters, digits, '_', '.' or '-', starting and ending with a letter or
// digit.
func (ld *loading) decodeLabels(a *hcl.Attribute, ctx *hcl.EvalContext) Labels {
	var m map[string]string
	diags := decodeExpr(a.Expr, ctx, &m)
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	for _, k := range sortedKeys(m) {
		for _, s := range []string{k, m[k]} {
			if !labelPattern.MatchString(s) {
				ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid label", fmt.Sprintf("The label %s = %s is not valid: names and values are 1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit, such as env = \"prod\".", quoteShort(k), quoteShort(m[k]))))
				return nil
			}
		}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeGuard decodes a top-level `guard { label = "env" }` block: every
// policy may only use connections whose value of that label equals its
// own.
func (ld *loading) decodeGuard(blk *hcl.Block, f *file) {
	content, diags := blk.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "label", Required: true}}})
	ld.diags = append(ld.diags, diags...)
	a, ok := content.Attributes["label"]
	if !ok {
		return
	}
	var label string
	if !ld.decodeString(a, f.ctx, &label) {
		return
	}
	if !labelPattern.MatchString(label) {
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid guard", fmt.Sprintf("The guard label %s is not a valid label name, such as \"env\".", quoteShort(label))))
		return
	}
	if slices.Contains(ld.cfg.Guards, label) {
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Duplicate guard", fmt.Sprintf("A guard on the label %q is already declared.", label)))
		return
	}
	ld.cfg.Guards = append(ld.cfg.Guards, label)
}

// connectionRef is a reference KIND.NAME to a declared connection inside
// a policy.
type connectionRef struct {
	key string
	at  hcl.Range
}

// connectionRefs lists the references to declared connections in the
// plugin blocks of a policy body, in source order.
func (ld *loading) connectionRefs(body hcl.Body) []connectionRef {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var refs []connectionRef
	var walk func(b *hclsyntax.Body)
	walk = func(b *hclsyntax.Body) {
		for _, attr := range sortedAttributes(b) {
			hclsyntax.VisitAll(attr.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
				st, ok := n.(*hclsyntax.ScopeTraversalExpr)
				if !ok || len(st.Traversal) != 2 {
					return nil
				}
				a, ok := st.Traversal[1].(hcl.TraverseAttr)
				if !ok {
					return nil
				}
				kind := st.Traversal.RootName()
				if _, declared := ld.cfg.Connections.Get(kind, a.Name); declared {
					refs = append(refs, connectionRef{kind + "." + a.Name, st.SrcRange})
				}
				return nil
			})
		}
		for _, blk := range b.Blocks {
			walk(blk.Body)
		}
	}
	for _, blk := range sb.Blocks {
		walk(blk.Body)
	}
	return refs
}

// checkGuards refuses a policy that uses a connection whose value of a
// guarded label differs from the policy's (a production policy writing to
// a staging Vault). A missing label counts as a different value.
func (ld *loading) checkGuards(p *Policy, body hcl.Body) {
	if len(ld.cfg.Guards) == 0 {
		return
	}
	for _, ref := range ld.connectionRefs(body) {
		conn := ld.cfg.ConnectionLabels[ref.key]
		for _, g := range ld.cfg.Guards {
			pv, pok := p.Labels[g]
			cv, cok := conn[g]
			if pok && cok && pv == cv {
				continue
			}
			ld.diags = append(ld.diags, errAt(ref.at, "Guard violated", fmt.Sprintf("Policy %q (%s) uses the connection %s (%s), but guard %q requires both to carry the same %s label. Label them, or use a connection of the policy's own %s.", p.Name, labelShown(g, pv, pok), ref.key, labelShown(g, cv, cok), g, g, g)))
		}
	}
}

func labelShown(name, value string, ok bool) string {
	if !ok {
		return "no " + name + " label"
	}
	return name + " = " + fmt.Sprintf("%q", value)
}

// Selector selects policies by labels: `env=prod,team=payments` matches
// policies carrying all those labels with those values.
type Selector map[string]string

// ParseSelector parses NAME=VALUE pairs separated by commas.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !labelPattern.MatchString(k) || !labelPattern.MatchString(v) {
			return nil, fmt.Errorf("the selector %q is not a list of NAME=VALUE labels separated by commas, such as env=prod,team=payments", s)
		}
		if prev, dup := sel[k]; dup && prev != v {
			return nil, fmt.Errorf("the selector %q asks for two values of %s", s, k)
		}
		sel[k] = v
	}
	return sel, nil
}

// Matches reports whether labels carry every label of the selector.
func (s Selector) Matches(labels Labels) bool {
	for k, v := range s {
		if labels[k] != v {
			return false
		}
	}
	return true
}
