package rotator

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnlyTestFilesEnableFailpoints: a production binary cannot be told to
// fail or kill itself. No file but a _test.go file may call
// faultinject.Enable, and no production file may read the failpoint
// environment variable.
func TestOnlyTestFilesEnableFailpoints(t *testing.T) {
	root := filepath.Join("..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return nil // another session's file in progress; the build reports it
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "faultinject" && n.Sel.Name == "Enable" {
					t.Errorf("%s: faultinject.Enable outside a _test.go file", fset.Position(n.Pos()))
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") && len(n.Args) == 1 {
					if id, ok := n.Args[0].(*ast.Ident); ok && id.Name == "FailpointEnv" {
						t.Errorf("%s: production code reads the failpoint environment variable", fset.Position(n.Pos()))
					}
					if sel2, ok := n.Args[0].(*ast.SelectorExpr); ok && sel2.Sel.Name == "FailpointEnv" {
						t.Errorf("%s: production code reads the failpoint environment variable", fset.Position(n.Pos()))
					}
					if lit, ok := n.Args[0].(*ast.BasicLit); ok && strings.Contains(lit.Value, "REKEY_FAILPOINTS") {
						t.Errorf("%s: production code reads REKEY_FAILPOINTS", fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files: the walk did not cover the module", checked)
	}
}

// TestFailpointsAreNotReadFromTheEnvironment: an engine built without
// failpoints has none, whatever the environment says.
func TestFailpointsAreNotReadFromTheEnvironment(t *testing.T) {
	t.Setenv(FailpointEnv, "create.before=kill")
	e, err := New(Options{Journal: NewMemJournal()})
	if err != nil {
		t.Fatal(err)
	}
	if names := e.fp.enabled(); len(names) != 0 {
		t.Fatalf("failpoints enabled from the environment: %v", names)
	}
}
