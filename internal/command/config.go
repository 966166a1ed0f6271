package command

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckArgv validates an argv option named attr: present when required,
// a non-empty program, no NUL bytes. rng is the attribute's range, or the
// block's when the attribute is absent.
func CheckArgv(attr string, argv []string, required bool, rng hcl.Range) hcl.Diagnostics {
	if argv == nil {
		if !required {
			return nil
		}
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Missing command",
			Detail:   fmt.Sprintf("The %s attribute is required: a list of the program and its arguments, such as [\"/usr/local/bin/rotate-key\", \"--create\"]. No shell is involved.", attr),
			Subject:  rng.Ptr(),
		}}
	}
	if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Empty command",
			Detail:   fmt.Sprintf("The %s list must start with the program to run, such as [\"/usr/local/bin/rotate-key\", \"--create\"].", attr),
			Subject:  rng.Ptr(),
		}}
	}
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid command argument",
				Detail:   fmt.Sprintf("An argument of %s contains a NUL character, which cannot be passed to a program.", attr),
				Subject:  rng.Ptr(),
			}}
		}
	}
	return nil
}

// CheckEnv validates an env option: variable names are identifiers and
// do not start with REKEY_, which rekey sets itself.
func CheckEnv(env map[string]string, rng hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch {
		case !envName.MatchString(k):
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid environment variable name",
				Detail:   fmt.Sprintf("%q is not a valid variable name: use letters, digits and underscores, not starting with a digit.", k),
				Subject:  rng.Ptr(),
			})
		case strings.HasPrefix(strings.ToUpper(k), "REKEY_"):
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Reserved environment variable name",
				Detail:   fmt.Sprintf("%q starts with REKEY_, which is reserved for the variables rekey sets itself.", k),
				Subject:  rng.Ptr(),
			})
		case strings.ContainsRune(env[k], 0):
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid environment variable value",
				Detail:   fmt.Sprintf("The value of %q contains a NUL character.", k),
				Subject:  rng.Ptr(),
			})
		}
	}
	return diags
}

// Resolve returns argv with a relative program path (one with a path
// separator, such as "scripts/rotate.sh") resolved by resolve, usually
// plugin.Env.Path, and made absolute. A bare name such as "systemctl" is
// left for PATH lookup.
func Resolve(argv []string, resolve func(string) string) []string {
	if len(argv) == 0 {
		return argv
	}
	out := append([]string(nil), argv...)
	p := out[0]
	if !filepath.IsAbs(p) && strings.ContainsAny(p, `/\`) {
		p = resolve(p)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		out[0] = p
	}
	return out
}

// KeyEnv returns the environment entries that hand key to a command:
// REKEY_KEY_ID and one REKEY_KEY_<FIELD> per field (the name upper-cased,
// characters other than letters, digits and underscores replaced by
// underscores), and the secret values, to be passed to Run as redact.
// A key whose value is not available (after a restart) yields only
// REKEY_KEY_ID.
func KeyEnv(key plugin.Key) (env, redact []string, err error) {
	if key.ID != "" {
		env = append(env, "REKEY_KEY_ID="+key.ID)
	}
	seen := map[string]string{"ID": "(the key id)"}
	for _, name := range key.Value.Names() {
		v := key.Value[name].Reveal()
		upper := FieldVar(name)
		if prev, dup := seen[upper]; dup {
			return nil, nil, plugin.Permanent(fmt.Errorf("key fields %q and %s would both be passed as REKEY_KEY_%s; rename one with the provider's options", name, prev, upper))
		}
		seen[upper] = fmt.Sprintf("%q", name)
		if strings.ContainsRune(v, 0) {
			return nil, nil, plugin.Permanent(fmt.Errorf("key field %q contains a NUL character and cannot be passed in the environment", name))
		}
		env = append(env, "REKEY_KEY_"+upper+"="+v)
		if v != "" {
			redact = append(redact, v)
		}
	}
	return env, redact, nil
}

// FieldVar returns the suffix of the REKEY_KEY_ variable for a key field.
func FieldVar(field string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, field)
}
