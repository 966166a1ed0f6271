package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/plugin"
)

// secretAdvice ends every diagnostic about a secret literal.
const secretAdvice = `Secret values must not be written in policy files; use token_file = "..." or env("...").`

var secretPatterns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"an AWS access key id", regexp.MustCompile(`(AKIA|ASIA)[A-Z0-9]{16}`)},
	{"a PEM private key", regexp.MustCompile(`-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----`)},
	{"a Vault token", regexp.MustCompile(`\b(hvs|hvb|hvr)\.[A-Za-z0-9_-]{24,}`)},
	{"a Vault token", regexp.MustCompile(`(^|[^A-Za-z0-9._/-])s\.[A-Za-z0-9]{24,}`)},
	{"a GitHub token", regexp.MustCompile(`\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}`)},
	{"a GitHub token", regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{22,}`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
}

// sensitive reports whether the attribute name of a block of this type
// and kind must not be given a literal value: what the kind declared
// (plugin.Declare), or plugin.DefaultRole for what it did not.
func sensitive(block, kind, name string) bool {
	role := plugin.Role(block, kind, name)
	return role&plugin.Sensitive != 0 && role&plugin.NotSensitive == 0
}

// secretMarkers are substrings every pattern match contains; most strings
// hold none of them and skip the regular expressions.
var secretMarkers = []string{"AKIA", "ASIA", "PRIVATE KEY", "s.", "hv", "gh", "github_pat_", "xox"}

// matchSecret returns what s looks like if it contains a credential.
func matchSecret(s string) (string, bool) {
	if len(s) < 15 || !slices.ContainsFunc(secretMarkers, func(m string) bool { return strings.Contains(s, m) }) {
		return "", false
	}
	for _, p := range secretPatterns {
		if p.re.MatchString(s) {
			return p.what, true
		}
	}
	return "", false
}

// scanSecrets refuses literal secrets anywhere in a file. It returns the
// diagnostics, which never contain the value, and the source ranges to
// mask before the source is shown in a snippet.
func scanSecrets(body *hclsyntax.Body) (hcl.Diagnostics, []hcl.Range) {
	var s secretScan
	s.body(body, declOwner{}, 0)
	return s.diags, s.mask
}

// declOwner is the plugin kind whose declaration governs a block's
// attributes: the connection kind of a top-level block, the kind of a
// policy's provider, sink, probe, reload or notify block; nested blocks
// belong to the kind around them. Settings and policy attributes have
// none and get the defaults.
type declOwner struct{ block, kind string }

// blockOwner returns the owner of blk, found at the given depth (0: top
// level) inside a block owned by parent.
func blockOwner(blk *hclsyntax.Block, parent declOwner, depth int) declOwner {
	switch {
	case depth == 0 && blk.Type == "policy":
		return declOwner{block: "policy"}
	case depth == 0:
		return declOwner{"connection", blk.Type}
	case parent.block == "policy" && len(blk.Labels) > 0:
		return declOwner{blk.Type, blk.Labels[0]}
	}
	return parent
}

type secretScan struct {
	diags hcl.Diagnostics
	mask  []hcl.Range
}

func (s *secretScan) body(b *hclsyntax.Body, o declOwner, depth int) {
	for _, attr := range sortedAttributes(b) {
		s.attribute(attr, o)
	}
	for _, blk := range b.Blocks {
		for i, label := range blk.Labels {
			if what, ok := matchSecret(label); ok && i < len(blk.LabelRanges) {
				s.mask = append(s.mask, blk.LabelRanges[i])
				s.diags = append(s.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Secret value in policy file",
					Detail:   fmt.Sprintf("A block label looks like %s. %s", what, secretAdvice),
					Subject:  blk.LabelRanges[i].Ptr(),
				})
			}
		}
		s.body(blk.Body, blockOwner(blk, o, depth), depth+1)
	}
}

// literalScan is what an expression holds in literals.
type literalScan struct {
	literals []*hclsyntax.LiteralValueExpr
	nonEmpty int
	// indirect is true when the expression calls env() or file(), or
	// refers to something, rather than giving the value itself.
	indirect bool
	// hit is the first literal that looks like a credential.
	hit  *hcl.Range
	what string
}

func scanLiterals(expr hclsyntax.Expression) literalScan {
	var r literalScan
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		switch e := n.(type) {
		case *hclsyntax.FunctionCallExpr:
			if e.Name == "env" || e.Name == "file" {
				r.indirect = true
			}
		case *hclsyntax.ScopeTraversalExpr, *hclsyntax.RelativeTraversalExpr:
			r.indirect = true
		case *hclsyntax.LiteralValueExpr:
			v := e.Val
			if !v.IsKnown() || v.IsNull() {
				return nil
			}
			switch v.Type() {
			case cty.String:
				r.literals = append(r.literals, e)
				if str := v.AsString(); str != "" && !isTemplate(str) {
					r.nonEmpty++
				}
				if r.hit == nil {
					if w, ok := matchSecret(v.AsString()); ok {
						rng := e.SrcRange
						r.hit, r.what = &rng, w
					}
				}
			case cty.Number:
				r.literals = append(r.literals, e)
				r.nonEmpty++
			}
		}
		return nil
	})
	return r
}

// isTemplate reports whether s holds a Go template action such as
// "{{ .Key.api_key }}": a plugin fills it in with the rotated key at run
// time, so it is a reference, not a secret.
func isTemplate(s string) bool {
	i := strings.Index(s, "{{")
	return i >= 0 && strings.Contains(s[i:], "}}")
}

// literalValue reports whether an expression gives a non-empty value
// written out in the file.
func (r literalScan) literalValue() bool { return !r.indirect && r.nonEmpty > 0 }

func (s *secretScan) attribute(attr *hclsyntax.Attribute, o declOwner) {
	all := scanLiterals(attr.Expr)
	var (
		hit    = all.hit
		detail string
	)
	switch {
	case hit != nil:
		detail = fmt.Sprintf("The value of %q looks like %s.", attr.Name, all.what)
	case sensitive(o.block, o.kind, attr.Name) && all.literalValue():
		r := attr.Expr.Range()
		hit = &r
		detail = fmt.Sprintf("%q holds a secret, so its value must not be written here.", attr.Name)
	case attr.Name != "fields" && plugin.Role(o.block, o.kind, attr.Name)&plugin.NotSensitive == 0:
		// Maps such as env = { API_TOKEN = "..." } or headers; fields maps
		// (and attributes a kind declares NotSensitive, such as the
		// kubernetes_secret sink's data) map names to key field names,
		// which are not secrets.
		hclsyntax.VisitAll(attr.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
			obj, ok := n.(*hclsyntax.ObjectConsExpr)
			if !ok || hit != nil {
				return nil
			}
			for _, item := range obj.Items {
				k, diags := item.KeyExpr.Value(nil)
				if diags.HasErrors() || !k.IsKnown() || k.IsNull() || k.Type() != cty.String {
					continue
				}
				name := strings.ReplaceAll(k.AsString(), "-", "_")
				if plugin.DefaultRole(name)&plugin.Sensitive != 0 && scanLiterals(item.ValueExpr).literalValue() {
					r := item.ValueExpr.Range()
					hit = &r
					detail = fmt.Sprintf("%q in %q holds a secret, so its value must not be written here.", k.AsString(), attr.Name)
					return nil
				}
			}
			return nil
		})
	}
	if hit == nil {
		return
	}
	for _, l := range all.literals {
		s.mask = append(s.mask, l.SrcRange)
	}
	s.diags = append(s.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Secret value in policy file",
		Detail:   detail + " " + secretAdvice,
		Subject:  hit,
	})
}

// maskSource returns a copy of src with every byte of the given ranges
// except line breaks replaced by '*', so that line, column and byte
// positions stay valid.
func maskSource(src []byte, ranges []hcl.Range) []byte {
	if len(ranges) == 0 {
		return src
	}
	out := append([]byte(nil), src...)
	for _, r := range ranges {
		for i := max(r.Start.Byte, 0); i < r.End.Byte && i < len(out); i++ {
			if out[i] != '\n' && out[i] != '\r' {
				out[i] = '*'
			}
		}
	}
	return out
}
