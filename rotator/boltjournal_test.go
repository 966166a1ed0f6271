package rotator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func fillJournal(t *testing.T, dir string, n int) {
	t.Helper()
	j, err := OpenBoltJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := j.Update(context.Background(), fmt.Sprintf("policy-%03d", i), func(st *PolicyState) error {
			st.Generation = int64(i + 1)
			st.CurrentKeyID = fmt.Sprintf("key-%03d-%s", i, strings.Repeat("x", 200))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJournalFirstStartWritesMarker(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenBoltJournal(dir, filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	m, err := readMarker(dir)
	if err != nil || m == nil || m.JournalID != j.ID() || j.ID() == "" {
		t.Fatalf("marker %+v, %v; journal id %q", m, err, j.ID())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.new-*")); len(left) > 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestJournalLossIsNeverAFirstStart(t *testing.T) {
	cases := map[string]struct {
		setup func(t *testing.T, dir string)
		want  error
		say   string
	}{
		"a zero-length journal is lost": {
			setup: func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, JournalFile), 0) },
			want:  ErrJournalLost, say: "empty (zero length)",
		},
		"a deleted journal with its marker is lost": {
			setup: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, JournalFile)) },
			want:  ErrJournalLost, say: "is missing, but",
		},
		"a deleted journal and marker with an audit log is lost": {
			setup: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, JournalFile))
				os.Remove(filepath.Join(dir, JournalMarker))
				os.WriteFile(filepath.Join(dir, "audit.log"), []byte("{}\n"), 0o600)
			},
			want: ErrJournalLost, say: "audit.log shows rotations ran here before",
		},
		"a journal replaced by another one is lost": {
			setup: func(t *testing.T, dir string) {
				other := t.TempDir()
				fillJournal(t, other, 1)
				b, _ := os.ReadFile(filepath.Join(other, JournalFile))
				os.WriteFile(filepath.Join(dir, JournalFile), b, 0o600)
			},
			want: ErrJournalLost, say: "was replaced",
		},
		"a journal that is not bbolt is corrupt": {
			setup: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, JournalFile), []byte(strings.Repeat("garbage ", 2000)), 0o600)
			},
			want: ErrJournalCorrupt, say: "rekey journal recover",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fillJournal(t, dir, 3)
			c.setup(t, dir)
			j, err := OpenBoltJournal(dir, filepath.Join(dir, "audit.log"))
			if err == nil {
				j.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.say) || !strings.Contains(err.Error(), "restore journal.db from a backup") {
				t.Fatalf("error: %v", err)
			}
		})
	}
}

// goText matches the wording of a recovered Go runtime panic.
var goText = regexp.MustCompile(`runtime error|out of range|nil pointer|invalid memory address|goroutine|unexpected fault`)

// TestJournalCorruptPageDoesNotPanic overwrites each data page of a
// journal in turn with garbage, then keeps each page's header and fills
// the rest with 0xff: opening it is an error, never a panic, and the error
// says the file is damaged without Go runtime wording.
func TestJournalCorruptPageDoesNotPanic(t *testing.T) {
	src := t.TempDir()
	fillJournal(t, src, 60)
	orig, err := os.ReadFile(filepath.Join(src, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	marker, _ := os.ReadFile(filepath.Join(src, JournalMarker))
	const page = 4096
	corrupt := 0
	for n := 0; n < 2*(len(orig)/page-2); n++ {
		off := (2 + n/2) * page
		b := append([]byte(nil), orig...)
		for i := off; i < off+page; i++ {
			if n%2 == 0 {
				b[i] = byte(i*7 + 3)
			} else if i >= off+16 {
				b[i] = 0xff // header kept, elements point far outside the file
			}
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, JournalFile), b, 0o600)
		os.WriteFile(filepath.Join(dir, JournalMarker), marker, 0o600)
		j, err := OpenBoltJournal(dir)
		if err != nil {
			if !errors.Is(err, ErrJournalCorrupt) && !errors.Is(err, ErrJournalLost) {
				t.Errorf("page %d: %v", off/page, err)
			}
			if goText.MatchString(err.Error()) {
				t.Errorf("page %d: the message speaks Go runtime, not journal: %v", off/page, err)
			}
			corrupt++
			continue
		}
		if _, err := j.List(context.Background()); err != nil && !errors.Is(err, ErrJournalCorrupt) {
			t.Errorf("page %d: list: %v", off/page, err)
		}
		j.Close()
	}
	if corrupt == 0 {
		t.Fatal("no corrupted page was detected")
	}
	t.Logf("%d of %d corruptions detected at open", corrupt, 2*(len(orig)/page-2))
}

func TestJournalDeletedWhileOpenRefusesWrites(t *testing.T) {
	for name, change := range map[string]func(dir string){
		"deleted":   func(dir string) { os.Remove(filepath.Join(dir, JournalFile)) },
		"truncated": func(dir string) { os.Truncate(filepath.Join(dir, JournalFile), 0) },
		"replaced": func(dir string) {
			p := filepath.Join(dir, JournalFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p+".tmp", b, 0o600)
			os.Rename(p+".tmp", p)
		},
		"marker deleted": func(dir string) { os.Remove(filepath.Join(dir, JournalMarker)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, err := OpenBoltJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			ctx := context.Background()
			if err := j.Check(); err != nil {
				t.Fatal(err)
			}
			change(dir)
			if err := j.Check(); !errors.Is(err, ErrJournalLost) {
				t.Fatalf("Check after the file was %s: %v", name, err)
			}
			if _, err := j.Update(ctx, "a", func(st *PolicyState) error { st.Generation = 1; return nil }); !errors.Is(err, ErrJournalLost) {
				t.Fatalf("Update after the file was %s: %v", name, err)
			}
			rescue := filepath.Join(dir, "rescued.db")
			if err := j.Rescue(rescue); name == "truncated" {
				if err == nil {
					t.Fatal("rescued a truncated file")
				}
				return
			} else if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(rescue); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("rescue copy: %v %v", fi, err)
			}
			os.Rename(rescue, filepath.Join(dir, JournalFile))
			if name == "marker deleted" {
				return
			}
			j.Close()
			j2, err := OpenBoltJournal(dir)
			if err != nil {
				t.Fatalf("reopening the rescued journal: %v", err)
			}
			j2.Close()
		})
	}
}

func TestJournalBeforeMarkersIsAdopted(t *testing.T) {
	dir := t.TempDir()
	fillJournal(t, dir, 2)
	os.Remove(filepath.Join(dir, JournalMarker))
	j, err := OpenBoltJournal(dir, filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	m, _ := readMarker(dir)
	if m == nil || m.JournalID != j.ID() {
		t.Fatalf("marker %+v, id %q", m, j.ID())
	}
	st, _ := j.List(context.Background())
	if len(st) != 2 {
		t.Fatalf("states: %d", len(st))
	}
}

func TestReplaceBoltJournalKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	fillJournal(t, dir, 1)
	os.Truncate(filepath.Join(dir, JournalFile), 0)
	j, err := ReplaceBoltJournal(dir, []PolicyState{{Policy: "p", Generation: 7, CurrentKeyID: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	st, ok, err := j.Get(context.Background(), "p")
	j.Close()
	if err != nil || !ok || st.Generation != 7 {
		t.Fatalf("%+v %v %v", st, ok, err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, JournalFile+".lost-*"))
	if len(old) != 1 {
		t.Fatalf("old journal kept as %v", old)
	}
	if j2, err := OpenBoltJournal(dir); err != nil {
		t.Fatal(err)
	} else {
		j2.Close()
	}
}
