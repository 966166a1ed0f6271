package notifiers_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/rekeyhq/rekey/notifiers"
	_ "github.com/rekeyhq/rekey/notifiers/exec"
	_ "github.com/rekeyhq/rekey/notifiers/webhook"
	"github.com/rekeyhq/rekey/plugin"
)

// TestExamples decodes the notify blocks of the example policies the way
// the loader does: `on` with DecodeFilter, the rest of the body with the
// kind's factory. (The whole files are also loaded by the loader's example
// test once policies decodes notify blocks.)
func TestExamples(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"notify-webhook.hcl", "notify-exec.hcl"} {
		path := filepath.Join("..", "examples", name)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := hclwrite.Format(src); string(got) != string(src) {
			t.Errorf("%s is not in canonical layout (hclwrite.Format)", name)
		}
		f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		found := 0
		for _, pb := range f.Body.(*hclsyntax.Body).Blocks {
			for _, b := range pb.Body.Blocks {
				if b.Type != "notify" {
					continue
				}
				found++
				factory, ok := notifiers.Registry.Lookup(b.Labels[0])
				if !ok {
					t.Fatalf("%s: unknown kind %q", name, b.Labels[0])
				}
				content, remain, diags := b.Body.PartialContent(notifiers.CommonSchema)
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				if _, diags := notifiers.DecodeFilter(content.Attributes["on"], nil); diags.HasErrors() {
					t.Errorf("%s: %v", name, diags)
				}
				env := &plugin.Env{Policy: pb.Labels[0], Kind: b.Labels[0], DefRange: b.DefRange(), BaseDir: filepath.Dir(path)}
				n, diags := factory(env, remain)
				if len(diags) > 0 || n == nil {
					t.Errorf("%s: %v", name, diags)
				}
			}
		}
		if found == 0 {
			t.Errorf("%s has no notify block", name)
		}
	}
}
