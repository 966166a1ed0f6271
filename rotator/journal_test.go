package rotator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The same suite runs against every journal back end.
func TestJournalBackends(t *testing.T) {
	backends := map[string]func(t *testing.T) Journal{
		"bolt": func(t *testing.T) Journal {
			j, err := OpenBoltJournal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { j.Close() })
			return j
		},
		"memory": func(t *testing.T) Journal { return NewMemJournal() },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			j := open(t)
			if _, ok, err := j.Get(ctx, "a"); ok || err != nil {
				t.Fatalf("Get on empty journal = %v, %v", ok, err)
			}
			if _, err := j.Update(ctx, "a", func(st *PolicyState) error {
				st.Generation = 3
				st.Active = &Record{ID: "r", Step: StepPromote}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("boom")
			if _, err := j.Update(ctx, "a", func(st *PolicyState) error { st.Generation = 99; return boom }); !errors.Is(err, boom) {
				t.Fatalf("Update error = %v", err)
			}
			st, ok, err := j.Get(ctx, "a")
			if !ok || err != nil || st.Generation != 3 || st.Active == nil || st.Active.Step != StepPromote || st.Policy != "a" {
				t.Fatalf("after failed update: %+v %v %v", st, ok, err)
			}
			if _, err := j.Update(ctx, "b", func(st *PolicyState) error { return nil }); err != nil {
				t.Fatal(err)
			}
			all, err := j.List(ctx)
			if err != nil || len(all) != 2 {
				t.Fatalf("List = %v, %v", all, err)
			}
		})
	}
}

func TestBoltJournalIsPrivateAndExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenBoltJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %o", fi.Mode().Perm())
	}
	fi, _ = os.Stat(filepath.Join(dir, JournalFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %o", fi.Mode().Perm())
	}
	if _, err := OpenBoltJournal(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
}
