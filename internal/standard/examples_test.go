package standard_test

import (
	"os"
	"path/filepath"
	"sort"
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

func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "examples", "quickstart", "rekey.hcl"))
	sort.Strings(files)
	return files
}

// TestExamples loads every example policy with the real loader and the
// whole standard plugin set: each must load without errors or warnings
// (without contacting any service or reading any credential), be in
// canonical layout, and check its keys with a probe or say rotate_blind.
func TestExamples(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	for _, path := range examples(t) {
		t.Run(filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := hclwrite.Format(src); string(got) != string(src) {
				t.Errorf("%s is not in canonical layout: run rekey fmt -write", path)
			}
			cfg, diags := policies.Load(path)
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
// that uses it (architecture.md).
func TestEveryKindHasAnExample(t *testing.T) {
	used := map[string]bool{}
	for _, path := range examples(t) {
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
				t.Errorf("%s %q has no example under examples/", fam, k)
			}
		}
	}
}
