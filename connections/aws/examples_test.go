package aws_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/rekeyhq/rekey/policies"
	_ "github.com/rekeyhq/rekey/probes/awssts"
	_ "github.com/rekeyhq/rekey/providers/awsiam"
	_ "github.com/rekeyhq/rekey/providers/exec"
	_ "github.com/rekeyhq/rekey/sinks/awssm"
	_ "github.com/rekeyhq/rekey/sinks/file"
)

// TestExamples loads the AWS example policies with the real loader.
func TestExamples(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	for _, name := range []string{"provider-aws-iam.hcl", "sink-aws-secretsmanager.hcl", "probe-aws-sts.hcl"} {
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
		})
	}
}
