//go:build !unix

package file

import (
	"errors"
	"io/fs"
	"os"
)

const ownershipSupported = false

var errNoOwnership = errors.New("file ownership is not supported on this operating system")

func lookupUser(string) (int, error)  { return -1, errNoOwnership }
func lookupGroup(string) (int, error) { return -1, errNoOwnership }

func ownerOf(fs.FileInfo) (uid, gid int) { return -1, -1 }

func chown(f *os.File, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	return errNoOwnership
}

func identityOf(fi fs.FileInfo) *identity {
	return &identity{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()}
}

// syncDir is a no-op: directories cannot be synced here.
func syncDir(string) error { return nil }
