//go:build !windows

package main

// runHosted hosts the daemon under the platform's service manager when the
// process was started by it. On Unix, systemd (Type=notify) and launchd run
// `rekey run` as a plain process: nothing to do.
func runHosted(a *app, cfgPath string) (handled bool, code int) { return false, 0 }
