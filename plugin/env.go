package plugin

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
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
// level with a block `KIND "NAME" { ... }`. Its errors tell a quoted
// reference ("aws.prod") to drop the quotes and suggest the closest
// declared name for an unknown one.
func (e *Env) Connection(expr hcl.Expression, kind string) (any, hcl.Diagnostics) {
	trav, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() || len(trav) != 2 || trav.RootName() != kind {
		detail := fmt.Sprintf("Expected a reference to %s connection, such as %s.main, naming a top-level block %s \"main\" { ... }.", Article(kind, false), kind, kind)
		if v, d := expr.Value(nil); !d.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			if s := v.AsString(); strings.HasPrefix(s, kind+".") && !strings.ContainsAny(s, " \"") && len(s) < 100 {
				detail = fmt.Sprintf("A connection is a reference, not a string: remove the quotes and write %s.", s)
			}
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid connection reference",
			Detail:   detail,
			Subject:  expr.Range().Ptr(),
		}}
	}
	name := ""
	if a, ok := trav[1].(hcl.TraverseAttr); ok {
		name = a.Name
	}
	var c any
	ok := false
	if e.Connections != nil {
		c, ok = e.Connections.Get(kind, name)
	}
	if !ok {
		detail := fmt.Sprintf("No %s connection %q is declared.", kind, name)
		names := e.Connections.names(kind)
		if best := closest(name, names); best != "" {
			detail += fmt.Sprintf(" Did you mean %s.%s?", kind, best)
		}
		if len(names) > 0 {
			detail += fmt.Sprintf(" Declared %s connections: %s.", kind, strings.Join(names, ", "))
		} else {
			detail += fmt.Sprintf(" Declare it at the top level: %s %q { ... }.", kind, name)
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown connection",
			Detail:   detail,
			Subject:  expr.Range().Ptr(),
		}}
	}
	return c, nil
}

// names returns the declared names of a kind's connections, sorted.
func (c *Connections) names(kind string) []string {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.m {
		if n, ok := strings.CutPrefix(k, kind+"."); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// closest returns the option nearest to given if it is close enough to be
// a typo, or "".
func closest(given string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if d := levenshtein.Distance(given, o, nil); d < bestDist {
			best, bestDist = o, d
		}
	}
	return best
}

// Article returns "a" or "an" for word (a kind or family name, read as
// spoken: "an aws", "an http", "a vault"), capitalised at the start of a
// sentence, followed by the word.
func Article(word string, capital bool) string {
	a := "a"
	w := strings.ToLower(word)
	if w != "" && (strings.ContainsRune("aeio", rune(w[0])) || strings.HasPrefix(w, "u") && !strings.HasPrefix(w, "us") && !strings.HasPrefix(w, "uni") ||
		strings.HasPrefix(w, "http") || strings.HasPrefix(w, "ssh") || strings.HasPrefix(w, "smtp") || strings.HasPrefix(w, "sftp") || strings.HasPrefix(w, "ldap")) {
		a = "an"
	}
	if capital {
		a = strings.ToUpper(a[:1]) + a[1:]
	}
	return a + " " + word
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

// AttrRole says what an attribute of a plugin block holds, so that the
// loader can check every kind alike without knowing it: literal secrets
// are refused, files others could change or read are refused, commands
// must exist. A kind declares its roles with Declare; attributes it does
// not declare get DefaultRole.
type AttrRole uint8

// Attribute roles; combine them with |.
const (
	// Sensitive: the value is a secret. A literal value is refused; it
	// must come from env(), file() or a *_file option.
	Sensitive AttrRole = 1 << iota
	// NotSensitive: the value names or identifies something although the
	// attribute's name looks like a secret's (the secret_id of a Secrets
	// Manager sink is the secret's name). Literals are allowed; values that
	// look like credentials are refused all the same.
	NotSensitive
	// File: the value is the path of a file the plugin reads. It must not
	// be writable by others or owned by another user.
	File
	// SecretFile: a File holding secret material (a token, a password, a
	// DSN, a private key): it must not be readable by group or others
	// either. SecretFile includes File.
	SecretFile
	// Command: the value is a list, a program and its arguments, that the
	// plugin runs. The program must exist, be executable and not be
	// changeable by others, nor the directory holding it.
	Command
	// WrittenFile: the value is the path of a file the plugin writes. It
	// must not lie inside the state directory.
	WrittenFile
)

// Attrs maps attribute names of one kind's block, at any depth of its
// nested blocks, to their roles.
type Attrs map[string]AttrRole

var (
	declMu sync.RWMutex
	decls  = map[string]Attrs{}
)

// Declare records the roles of a kind's attributes. block is the block
// type the kind is used in: "provider", "sink", "probe", "reload",
// "notify", or "connection" for top-level connection blocks. Call it from
// init next to the registration:
//
//	func init() {
//		providers.Register("postgres", New)
//		plugin.Declare("provider", "postgres", plugin.Attrs{
//			"dsn":      plugin.Sensitive,
//			"dsn_file": plugin.SecretFile,
//		})
//	}
//
// Declaring a kind twice merges the maps.
func Declare(block, kind string, attrs Attrs) {
	declMu.Lock()
	defer declMu.Unlock()
	key := block + " " + kind
	m := decls[key]
	if m == nil {
		m = Attrs{}
		decls[key] = m
	}
	for name, role := range attrs {
		if role&SecretFile != 0 {
			role |= File
		}
		m[name] = role
	}
}

// Role returns the role of the attribute name in a block of the given
// type and kind: the declared one if there is one, otherwise DefaultRole.
func Role(block, kind, name string) AttrRole {
	declMu.RLock()
	role, ok := decls[block+" "+kind][name]
	declMu.RUnlock()
	if ok {
		return role
	}
	return DefaultRole(name)
}

// secretWords mark an attribute name, or the part of a *_file name before
// _file, as holding or naming secret material.
var secretWords = []string{"password", "passphrase", "secret", "token", "api_key", "private_key", "authorization", "credential", "dsn", "role_id", "signing_key", "client_key", "key_file"}

// sensitiveSuffixes are the endings of attribute names whose literal value
// would be a secret.
var sensitiveSuffixes = []string{"password", "passphrase", "secret", "token", "secret_id", "secret_access_key", "api_key", "private_key", "authorization", "dsn"}

// DefaultRole is the conservative role of an attribute a kind did not
// declare:
//   - a name ending in _file is a File, and a SecretFile unless it names a
//     certificate or CA bundle (cert, ca_, _ca) while its stem names
//     secret material (password, secret, token, key, credential, dsn...);
//   - a name ending in _env names a variable and has no role;
//   - a name ending in password, passphrase, secret, token, secret_id,
//     secret_access_key, api_key, private_key, authorization or dsn is
//     Sensitive;
//   - command, or a name ending in _command, is a Command.
func DefaultRole(name string) AttrRole {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, "_file"):
		stem := strings.TrimSuffix(n, "_file")
		if strings.Contains(stem, "cert") || stem == "ca" || strings.HasPrefix(stem, "ca_") || strings.HasSuffix(stem, "_ca") {
			return File
		}
		for _, w := range secretWords {
			if strings.Contains(n, w) || strings.HasSuffix(stem, "key") {
				return File | SecretFile
			}
		}
		return File
	case strings.HasSuffix(n, "_env"):
		return 0
	case n == "command" || strings.HasSuffix(n, "_command"):
		return Command
	}
	for _, s := range sensitiveSuffixes {
		if strings.HasSuffix(n, s) {
			return Sensitive
		}
	}
	return 0
}
