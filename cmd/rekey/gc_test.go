package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func gogc(t *testing.T) int64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("/gc/gogc:percent is not supported")
	}
	return int64(s[0].Value.Uint64())
}

// TestLowGCDuringStartOnly: the daemon starts with the collector at
// startupGCPercent and gets the previous percent back once, so that a
// later change is not undone.
func TestLowGCDuringStartOnly(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	restore := lowGC()
	if got := gogc(t); got != startupGCPercent {
		t.Fatalf("during start GOGC = %d, want %d", got, startupGCPercent)
	}
	restore()
	if got := gogc(t); got != 150 {
		t.Fatalf("after start GOGC = %d, want the previous 150", got)
	}
	debug.SetGCPercent(120)
	restore()
	if got := gogc(t); got != 120 {
		t.Fatalf("a second restore changed GOGC to %d", got)
	}
}
