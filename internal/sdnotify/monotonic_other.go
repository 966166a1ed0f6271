//go:build !linux

package sdnotify

// monotonicUsec is unavailable where there is no systemd.
func monotonicUsec() (uint64, bool) { return 0, false }
