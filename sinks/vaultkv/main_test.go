package vaultkv_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine (Vault connections, proxies,
// HTTP connections) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
