package vault_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	_ "github.com/rekeyhq/rekey/internal/standard"
	"github.com/rekeyhq/rekey/policies"
)

// TestExamples loads the Vault example policies with the real loader. It
// reads no credential file and contacts no Vault.
func TestExamples(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	for _, name := range []string{"sink-vault-kv.hcl", "provider-vault-approle-secret-id.hcl", "probe-vault-login.hcl"} {
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
			if err := cfg.Connections.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
