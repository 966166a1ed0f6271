package vault_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine (renewal loops, lifetime watchers,
// HTTP connections) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
