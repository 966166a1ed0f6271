//go:build unix

package harden

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// The account databases read by privateGroup; tests point them elsewhere.
var (
	passwdPath = "/etc/passwd"
	groupPath  = "/etc/group"
)

// privateGroup reports whether gid is the user private group of uid, the
// Debian and Red Hat convention that makes a umask of 002 safe: a group
// named like the user, the user's primary group, that no other account has
// as its primary group and that lists no other member. Group write access
// to a file owned by uid then grants nobody else anything. Anything the
// local account files cannot confirm (accounts from a directory service,
// an unreadable file) is not a private group.
func privateGroup(uid, gid uint32) bool {
	users, err := readAccounts(passwdPath)
	if err != nil {
		return false
	}
	groups, err := readAccounts(groupPath)
	if err != nil {
		return false
	}
	var name string
	for _, u := range users {
		if len(u) < 4 {
			continue
		}
		if u[2] == strconv.FormatUint(uint64(uid), 10) {
			if u[3] != strconv.FormatUint(uint64(gid), 10) || name != "" {
				return false
			}
			name = u[0]
		} else if u[3] == strconv.FormatUint(uint64(gid), 10) {
			return false
		}
	}
	if name == "" {
		return false
	}
	found := false
	for _, g := range groups {
		if len(g) < 4 || g[2] != strconv.FormatUint(uint64(gid), 10) {
			continue
		}
		if found || g[0] != name {
			return false
		}
		found = true
		for _, m := range strings.Split(g[3], ",") {
			if m != "" && m != name {
				return false
			}
		}
	}
	return found
}

// readAccounts splits a passwd(5) or group(5) file into its fields.
func readAccounts(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-") {
			return nil, os.ErrInvalid // NIS compat entries: not decidable here
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}

// UserPrivateGroup reports whether the effective user's primary group is
// a user private group (see privateGroup): files that user creates with a
// umask of 002 pass the checks of this package.
func UserPrivateGroup() bool {
	return privateGroup(uint32(os.Geteuid()), uint32(os.Getegid()))
}
