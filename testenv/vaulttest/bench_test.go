package vaulttest_test

import (
	"testing"

	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// BenchmarkStart measures starting a dev server until sys/health answers
// 200, and stopping it.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		vaulttest.Start(b).Stop()
	}
}
