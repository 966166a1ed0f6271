package providers_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// configurable is a kind whose abilities come from its configuration, as
// the exec and http kinds do.
type configurable struct {
	providers.Optional
}

func (c *configurable) Target() string { return "test:configurable" }
func (c *configurable) Create(context.Context, plugin.Rotation) (plugin.Key, error) {
	return plugin.Key{}, nil
}
func (c *configurable) Delete(context.Context, string) error { return nil }

// plain has no optional ability.
type plain struct{}

func (plain) Target() string                                              { return "test:plain" }
func (plain) Create(context.Context, plugin.Rotation) (plugin.Key, error) { return plugin.Key{}, nil }
func (plain) Delete(context.Context, string) error                        { return nil }

// full has every ability by its type and declares nothing, as aws_iam.
type full struct{ plain }

func (full) List(context.Context) ([]plugin.KeyInfo, error)      { return nil, nil }
func (full) MaxKeys() int                                        { return 2 }
func (full) Deactivate(context.Context, string) error            { return nil }
func (full) Activate(context.Context, string) error              { return nil }
func (full) LastUsed(context.Context, string) (time.Time, error) { return time.Time{}, nil }
func (full) UsageReportingDelay() time.Duration                  { return time.Hour }
func (full) PropagationDelay() time.Duration                     { return time.Minute }

type has struct{ list, capacity, deact, usage, propagation bool }

func abilitiesOf(p providers.Provider) has {
	var h has
	_, h.list = providers.AsLister(p)
	_, h.capacity = providers.AsCapacity(p)
	_, h.deact = providers.AsDeactivator(p)
	_, h.usage = providers.AsUsageReporter(p)
	_, h.propagation = providers.AsPropagator(p)
	return h
}

func TestOptionalDeclaresExactlyWhatIsSet(t *testing.T) {
	ctx := context.Background()
	for mask := range 1 << 6 {
		set := func(i int) bool { return mask&(1<<i) != 0 }
		var calls []string
		c := &configurable{providers.Optional{Kind: "test"}}
		if set(0) {
			c.ListFunc = func(context.Context) ([]plugin.KeyInfo, error) { calls = append(calls, "list"); return nil, nil }
		}
		if set(1) {
			c.Limit = 3
		}
		if set(2) {
			c.DeactivateFunc = func(context.Context, string) error { calls = append(calls, "deactivate"); return nil }
		}
		if set(3) {
			c.ActivateFunc = func(context.Context, string) error { calls = append(calls, "activate"); return nil }
		}
		if set(4) {
			c.LastUsedFunc = func(context.Context, string) (time.Time, error) {
				calls = append(calls, "last_used")
				return time.Time{}, nil
			}
			c.UsageDelay = time.Hour
		}
		if set(5) {
			c.Propagation = time.Minute
		}
		want := has{list: set(0), capacity: set(0) && set(1), deact: set(2) && set(3), usage: set(4), propagation: set(5)}
		if got := abilitiesOf(c); got != want {
			t.Errorf("mask %06b: abilities %+v, want %+v", mask, got, want)
		}
		// Called past the declaration (a type assertion), a missing ability
		// answers ErrUnsupported, permanently, and reaches no function.
		_, errL := c.List(ctx)
		errD := c.Deactivate(ctx, "k")
		errA := c.Activate(ctx, "k")
		_, errU := c.LastUsed(ctx, "k")
		for _, x := range []struct {
			name    string
			present bool
			err     error
		}{{"list", want.list, errL}, {"deactivate", want.deact, errD}, {"activate", want.deact, errA}, {"last_used", want.usage, errU}} {
			if x.present != (x.err == nil) {
				t.Errorf("mask %06b: %s present %v, error %v", mask, x.name, x.present, x.err)
			}
			if x.err != nil && (!errors.Is(x.err, errors.ErrUnsupported) || !plugin.IsPermanent(x.err) || !strings.Contains(x.err.Error(), x.name)) {
				t.Errorf("mask %06b: %s error %v, want a permanent ErrUnsupported naming it", mask, x.name, x.err)
			}
		}
		wantCalls := []string{}
		if want.list {
			wantCalls = append(wantCalls, "list")
		}
		if want.deact {
			wantCalls = append(wantCalls, "deactivate", "activate")
		}
		if want.usage {
			wantCalls = append(wantCalls, "last_used")
		}
		if strings.Join(calls, ",") != strings.Join(wantCalls, ",") {
			t.Errorf("mask %06b: calls %v, want %v", mask, calls, wantCalls)
		}
		if (c.MaxKeys() != 0) != want.capacity || (c.UsageReportingDelay() != 0) != want.usage {
			t.Errorf("mask %06b: MaxKeys %d, UsageReportingDelay %s", mask, c.MaxKeys(), c.UsageReportingDelay())
		}
	}
}

func TestUndeclaredProvidersHaveTheirTypesAbilities(t *testing.T) {
	if got := abilitiesOf(plain{}); got != (has{}) {
		t.Errorf("plain: %+v, want none", got)
	}
	if got := abilitiesOf(full{}); got != (has{true, true, true, true, true}) {
		t.Errorf("full: %+v, want all", got)
	}
}

// TestNoTypeAssertionOnAnAbility keeps the contract: code outside tests
// asks for an ability with providers.AsX, which honours a Declarer; a type
// assertion would see every ability of a configurable kind.
func TestNoTypeAssertionOnAnAbility(t *testing.T) {
	abilities := map[string]bool{"Lister": true, "Capacity": true, "Deactivator": true, "UsageReporter": true, "Propagator": true}
	root := ".."
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil // not ours to judge here
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ta, ok := n.(*ast.TypeAssertExpr)
			if !ok {
				return true
			}
			if sel, ok := ta.Type.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "providers" && abilities[sel.Sel.Name] {
					t.Errorf("%s: type assertion on providers.%s; use providers.As%s", fset.Position(ta.Pos()), sel.Sel.Name, sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
