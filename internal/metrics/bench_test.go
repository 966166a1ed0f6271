package metrics

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkPolicies10000 sets the state of 10,000 policies and scrapes
// them; it reports the heap the metrics keep per policy (retained-B/policy).
func BenchmarkPolicies10000(b *testing.B) {
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("p%05d", i)
	}
	var retained uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := New("bench")
		for _, n := range names {
			m.SetPolicyState(n, PolicyState{ProviderKind: "random", Next: now.Add(time.Hour), KeyCreated: now, MaxAge: time.Hour, Labels: map[string]string{"env": "prod"}})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if after.HeapAlloc > before.HeapAlloc {
			retained = max(retained, after.HeapAlloc-before.HeapAlloc)
		}
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(m)
	}
	b.ReportMetric(float64(retained)/float64(len(names)), "retained-B/policy")
}
