package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
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

// secretNameSuffixes are attribute names (or endings of names) whose
// literal value would be a secret.
var secretNameSuffixes = []string{"password", "passphrase", "secret", "token", "secret_id", "secret_access_key", "api_key", "private_key", "authorization"}

// secretNameExempt lists attributes whose name matches a secret name but
// which hold a name, not a secret: "BLOCKTYPE KIND ATTRIBUTE".
var secretNameExempt = map[string]bool{
	"sink aws_secretsmanager secret_id":  true,
	"probe aws_secretsmanager secret_id": true,
}

// isSecretName reports whether an attribute of this name must not be given
// a literal value.
func isSecretName(name string) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, "_file") || strings.HasSuffix(n, "_env") {
		return false
	}
	for _, s := range secretNameSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
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
	s.body(body, "", "")
	return s.diags, s.mask
}

type secretScan struct {
	diags hcl.Diagnostics
	mask  []hcl.Range
}

func (s *secretScan) body(b *hclsyntax.Body, blockType, kind string) {
	for _, attr := range sortedAttributes(b) {
		s.attribute(attr, blockType, kind)
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
		k := ""
		if len(blk.Labels) > 0 {
			k = blk.Labels[0]
		}
		s.body(blk.Body, blk.Type, k)
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

func (s *secretScan) attribute(attr *hclsyntax.Attribute, blockType, kind string) {
	all := scanLiterals(attr.Expr)
	var (
		hit    = all.hit
		detail string
	)
	switch {
	case hit != nil:
		detail = fmt.Sprintf("The value of %q looks like %s.", attr.Name, all.what)
	case isSecretName(attr.Name) && all.literalValue() && !secretNameExempt[blockType+" "+kind+" "+attr.Name]:
		r := attr.Expr.Range()
		hit = &r
		detail = fmt.Sprintf("%q holds a secret, so its value must not be written here.", attr.Name)
	case attr.Name != "fields":
		// Maps such as env = { API_TOKEN = "..." } or headers; fields maps
		// names to key field names, which are not secrets.
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
				if isSecretName(name) && scanLiterals(item.ValueExpr).literalValue() {
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
