package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary act as the rekey command when
// REKEY_TEST_BE_MAIN=1, so that tests run the daemon as a child process
// without a separate build. Run as "rekey" (a link the README scripts put
// in $PATH), it is the rekey command too.
func TestMain(m *testing.M) {
	if os.Getenv("REKEY_TEST_BE_MAIN") == "1" || filepath.Base(os.Args[0]) == "rekey" {
		os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
