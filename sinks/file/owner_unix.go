//go:build unix

package file

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

const ownershipSupported = true

func lookupUser(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return -1, fmt.Errorf("looking up user %q: %w", name, err)
	}
	return strconv.Atoi(u.Uid)
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("looking up group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// ownerOf returns the uid and gid of a file.
func ownerOf(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// chown changes the owner of an open file; -1 keeps a part unchanged.
func chown(f *os.File, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	return f.Chown(uid, gid)
}

func identityOf(fi fs.FileInfo) *identity {
	id := &identity{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev = uint64(st.Dev) //nolint:unconvert // int32 on some systems
		id.Inode = uint64(st.Ino)
	}
	return id
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
