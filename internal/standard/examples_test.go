package standard_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	_ "github.com/rekeyhq/rekey/internal/standard"
	"github.com/rekeyhq/rekey/policies"
)

// TestExamples loads example policies with the real loader and the whole
// standard plugin set: each must load without errors or warnings, be in
// canonical layout, and hold one policy with a probe or rotate_blind.
func TestExamples(t *testing.T) {
	for _, name := range []string{
		"provider-exec.hcl",
		"provider-random.hcl",
		"sink-file.hcl",
		"probe-exec.hcl",
		"probe-http.hcl",
		"reload-exec.hcl",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", "examples", name)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := hclwrite.Format(src); string(got) != string(src) {
				t.Errorf("%s is not in canonical layout (hclwrite.Format)", name)
			}
			cfg, diags := policies.Load(path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if len(diags) > 0 {
				t.Errorf("warnings: %v", diags)
			}
			if len(cfg.Policies) != 1 {
				t.Fatalf("%d policies", len(cfg.Policies))
			}
			if p := cfg.Policies[0]; len(p.Probes) == 0 && !p.RotateBlind {
				t.Errorf("policy %s has no probe", p.Name)
			}
		})
	}
}
