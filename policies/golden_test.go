package policies

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad and testdata/warn")

// fixtures lists the cases of a testdata directory: each *.hcl file and
// each subdirectory is one configuration, with NAME.golden next to it.
func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			cases = append(cases, e.Name())
		}
	}
	return cases
}

func checkGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./policies -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("diagnostics differ from %s (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", golden, got, want)
	}
}

// TestBadInputs loads every malformed configuration in testdata/bad and
// compares the rendered diagnostics, with positions and snippets, to its
// golden file.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	cases := fixtures(t, "testdata/bad")
	if len(cases) < 25 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	for _, c := range cases {
		name := strings.TrimSuffix(c, ".hcl")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := &Loader{LookupEnv: testEnv}
			cfg, diags := l.Load(filepath.Join("testdata/bad", c))
			if !diags.HasErrors() {
				t.Fatalf("loaded without error:\n%s", render(t, l.Files(), diags))
			}
			if cfg != nil {
				t.Error("a configuration was returned along with errors")
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject == nil {
					t.Errorf("error %q has no source position", d.Summary)
				}
			}
			checkGolden(t, filepath.Join("testdata/bad", name+".golden"), render(t, l.Files(), diags))
		})
	}
}

// TestWarnings loads the valid configurations in testdata/warn that still
// deserve a warning.
func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, c := range fixtures(t, "testdata/warn") {
		name := strings.TrimSuffix(c, ".hcl")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := &Loader{LookupEnv: testEnv}
			cfg, diags := l.Load(filepath.Join("testdata/warn", c))
			if diags.HasErrors() || cfg == nil {
				t.Fatalf("load failed:\n%s", render(t, l.Files(), diags))
			}
			if len(diags) == 0 {
				t.Fatal("no warning")
			}
			checkGolden(t, filepath.Join("testdata/warn", name+".golden"), render(t, l.Files(), diags))
		})
	}
}
