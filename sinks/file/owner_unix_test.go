//go:build unix

package file

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOwnership(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing file owners needs root on Unix")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	os.WriteFile(path, []byte("original"), 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	owner := func() (int, int) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid)
	}

	s := mustSink(t, dir, "path = \"k\"\nformat = \"raw\"")
	st, _ := promote(t, s, rot("r1"), key("k1", "v", "new"))
	if u, g := owner(); u != 65534 || g != 65534 {
		t.Fatalf("owner not preserved: %d:%d", u, g)
	}
	if err := s.Rollback(ctx, rot("r1"), st); err != nil {
		t.Fatal(err)
	}
	if u, g := owner(); u != 65534 || g != 65534 {
		t.Fatalf("owner not restored: %d:%d", u, g)
	}

	s = mustSink(t, dir, "path = \"k\"\nformat = \"raw\"\nowner = \"1234\"\ngroup = \"0\"")
	promote(t, s, rot("r2"), key("k2", "v", "newer"))
	if u, g := owner(); u != 1234 || g != 0 {
		t.Fatalf("configured owner not applied: %d:%d", u, g)
	}
	if fi, _ := os.Stat(filepath.Join(dir, ".k.rekey-prev")); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatal("the prev copy is not owned by rekey's user")
	}

	s = mustSink(t, dir, "path = \"k\"\nformat = \"raw\"\nowner = \"nobody\"")
	promote(t, s, rot("r3"), key("k3", "v", "newest"))
	if u, g := owner(); u != 65534 || g != 0 {
		t.Fatalf("owner by name: %d:%d (group kept from the existing file)", u, g)
	}
}
