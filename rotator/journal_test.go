package rotator

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

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
