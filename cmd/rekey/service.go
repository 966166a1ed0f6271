package main

import "fmt"

func (a *app) cmdService(args []string) int {
	fmt.Fprintln(a.stderr, "rekey service: managing the system service is not built yet; see install/ for the systemd unit")
	return ExitRuntime
}
