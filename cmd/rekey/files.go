package main

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/policies"
)

// fileRef is a file named by a `*_file` option in the configuration.
type fileRef struct {
	path   string
	secret bool
}

// referencedFiles lists the files that `*_file` options name with a literal
// path (token_file, secret_id_file, signing_key_file, ca_file, ...),
// resolved against the directory of the policy file. Options whose name
// says they hold key material (token, secret, key, password) are secret;
// certificates and CA bundles are not.
func referencedFiles(files map[string]*hcl.File) []fileRef {
	seen := map[string]bool{}
	var out []fileRef
	var walk func(dir string, b *hclsyntax.Body)
	walk = func(dir string, b *hclsyntax.Body) {
		for name, attr := range b.Attributes {
			if !strings.HasSuffix(name, "_file") {
				continue
			}
			v, diags := attr.Expr.Value(nil)
			if diags.HasErrors() || !v.IsKnown() || v.IsNull() || !v.Type().Equals(cty.String) {
				continue
			}
			p := v.AsString()
			if p == "" {
				continue
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			n := strings.TrimSuffix(name, "_file")
			secret := !strings.Contains(n, "cert") && !strings.HasPrefix(n, "ca") &&
				(strings.Contains(n, "token") || strings.Contains(n, "secret") || strings.Contains(n, "key") || strings.Contains(n, "password") || strings.Contains(n, "role_id"))
			out = append(out, fileRef{path: p, secret: secret})
		}
		for _, blk := range b.Blocks {
			walk(dir, blk.Body)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if body, ok := files[n].Body.(*hclsyntax.Body); ok {
			walk(filepath.Dir(n), body)
		}
	}
	return out
}

// checkFiles refuses configuration and credential files that another user
// could change or read, and a state directory others can enter. Files that
// do not exist yet are left to the plugins that read them.
func checkFiles(cfg *policies.Config, files map[string]*hcl.File) error {
	var errs []error
	for _, f := range cfg.Files {
		if err := harden.CheckFile(f, harden.FileOptions{}); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, r := range referencedFiles(files) {
		if err := harden.CheckFile(r.path, harden.FileOptions{Secret: r.secret}); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := harden.CheckDir(cfg.StateDir, harden.FileOptions{Secret: true}); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
