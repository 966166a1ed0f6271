//go:build linux

package harden

import "syscall"

// pseudoFileSystems are the file systems of kernel interfaces, by statfs
// magic number; a journal written there is lost or refused.
var pseudoFileSystems = map[int64]string{
	0x9fa0:     "proc",
	0x62656572: "sysfs",
	0x1cd1:     "devpts",
	0x27e0eb:   "cgroup",
	0x63677270: "cgroup2",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x73636673: "securityfs",
	0x6e736673: "nsfs",
	0xcafe4a11: "bpf",
	0x42494e4d: "binfmt_misc",
	0x19800202: "mqueue",
	0x6165676c: "pstore",
	0xde5e81e4: "efivarfs",
	0x50495045: "pipefs",
	0x534f434b: "sockfs",
	0x1373:     "devfs",
}

// fsProblem says why the file system holding dir cannot hold a journal.
func fsProblem(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	if name, ok := pseudoFileSystems[int64(st.Type)]; ok {
		return dir + " is on " + name + ", a kernel interface, not storage; use a directory such as /var/lib/rekey"
	}
	if st.Flags&0x1 != 0 { // ST_RDONLY
		return dir + " is on a read-only file system"
	}
	return ""
}
