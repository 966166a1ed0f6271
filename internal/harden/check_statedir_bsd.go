//go:build unix && !linux

package harden

// fsProblem says why the file system holding dir cannot hold a journal;
// beyond Linux only the kernel paths of CheckStateDir are recognised.
func fsProblem(string) string { return "" }
