package main

import (
	"fmt"
	"os"

	"github.com/rekeyhq/rekey/internal/faultinject"
	"github.com/rekeyhq/rekey/rotator"
)

// The crash matrix runs this test binary as the daemon and names the
// failpoint in rotator.FailpointEnv. Only the test binary reads it: the
// production rekey binary has no way to enable failpoints.
func init() {
	spec := os.Getenv(rotator.FailpointEnv)
	if spec == "" {
		return
	}
	fps, err := rotator.ParseFailpoints(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", rotator.FailpointEnv, err)
		os.Exit(2)
	}
	faultinject.Enable(fps)
}
