package standard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryKindIsImported keeps docs/architecture.md's "Adding a kind"
// true: every folder of a plugin family that registers a kind has its one
// import line here.
func TestEveryKindIsImported(t *testing.T) {
	src, err := os.ReadFile("standard.go")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..")
	for _, family := range []string{"providers", "sinks", "probes", "reloaders", "notifiers", "connections"} {
		dirs, err := os.ReadDir(filepath.Join(root, family))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if !d.IsDir() || d.Name() == "internal" || d.Name() == "testdata" {
				continue
			}
			if !registers(t, filepath.Join(root, family, d.Name())) {
				continue
			}
			imp := `_ "github.com/rekeyhq/rekey/` + family + "/" + d.Name() + `"`
			if !strings.Contains(string(src), imp) {
				t.Errorf("%s/%s registers a kind but internal/standard/standard.go lacks %s", family, d.Name(), imp)
			}
		}
	}
}

func registers(t *testing.T, dir string) bool {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "func init()") && strings.Contains(string(b), "Register(") {
			return true
		}
	}
	return false
}
