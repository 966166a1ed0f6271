package rotator

import (
	"context"
	"testing"
	"time"
)

// BenchmarkEngineRotation measures the engine's own cost per complete
// rotation (journal writes included) with in-process plugins.
func BenchmarkEngineRotation(b *testing.B) {
	w := newWorld(b)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(b, fullProvider(w))
	f.p.Probes[1].Successes = 1
	e := f.engine(b, map[string]string{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if out, err := e.Rotate(ctx, "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != "done" {
			b.Fatalf("%+v %v", out, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rotations/s")
}
