package standard_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	_ "github.com/rekeyhq/rekey/internal/standard"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/sinks"
)

// examples returns examples/*/rekey.hcl: each example is a directory of
// its own that validates alone (rekey validate examples/NAME).
func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "rekey.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*/rekey.hcl")
	}
	sort.Strings(files)
	return files
}

// TestExamplesLayout: every *.hcl under examples/ is an example's
// rekey.hcl or sits in an example directory; no flat examples/*.hcl that
// would be loaded together with others and clash.
func TestExamplesLayout(t *testing.T) {
	flat, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flat {
		t.Errorf("%s: move it to examples/%s/rekey.hcl", f, strings.TrimSuffix(filepath.Base(f), ".hcl"))
	}
}

// TestExamples loads every example directory with the real loader and the
// whole standard plugin set, as `rekey validate examples/NAME` does: each
// must load without errors or warnings (without contacting any service or
// reading any credential), be in canonical layout, and check its keys with
// a probe or say rotate_blind.
func TestExamples(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	for _, path := range examples(t) {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := hclwrite.Format(src); string(got) != string(src) {
				t.Errorf("%s is not in canonical layout: run rekey fmt -write", path)
			}
			cfg, diags := policies.Load(filepath.Dir(path))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if len(diags) > 0 {
				t.Errorf("warnings: %v", diags)
			}
			defer cfg.Connections.Close()
			if len(cfg.Policies) == 0 {
				t.Fatal("no policy")
			}
			for _, p := range cfg.Policies {
				if len(p.Probes) == 0 && !p.RotateBlind {
					t.Errorf("policy %s has no probe", p.Name)
				}
			}
		})
	}
}

// TestEveryKindHasAnExample: adding a plugin kind means adding an example
// directory, examples/NAME/rekey.hcl, that uses it.
func TestEveryKindHasAnExample(t *testing.T) {
	used := map[string]bool{}
	all, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range all {
		src, _ := os.ReadFile(path)
		f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			if b.Type != "policy" && len(b.Labels) > 0 {
				used["connection/"+b.Type] = true
			}
			for _, inner := range b.Body.Blocks {
				if len(inner.Labels) > 0 {
					used[inner.Type+"/"+inner.Labels[0]] = true
				}
			}
		}
	}
	families := map[string][]string{
		"provider":   providers.Registry.Kinds(),
		"sink":       sinks.Registry.Kinds(),
		"probe":      probes.Registry.Kinds(),
		"reload":     reloaders.Registry.Kinds(),
		"notify":     notifiers.Registry.Kinds(),
		"connection": plugin.ConnectionKinds.Kinds(),
	}
	for fam, kinds := range families {
		if len(kinds) == 0 {
			t.Errorf("no %s kind registered", fam)
		}
		for _, k := range kinds {
			if !used[fam+"/"+k] {
				t.Errorf("%s %q has no example: add examples/%s-%s/rekey.hcl using it", fam, k, fam, strings.ReplaceAll(k, "_", "-"))
			}
		}
	}
}
