package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// BenchmarkQuickstartRotation runs complete rotations of the quickstart
// policy (exec provider scripts, file sink, exec probes and reload) through
// the engine, revoke rules shortened to zero, and reports rotations per
// second and the mean latency of each step.
func BenchmarkQuickstartRotation(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join("..", "..", "examples", "quickstart")
	for _, f := range []string{"keyservice.sh", "dependent.sh", "probe-new-key.sh", "rekey.hcl"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			b.Fatal(err)
		}
		s := string(data)
		if f == "rekey.hcl" {
			s = strings.NewReplacer(`after = "10s"`, `after = "0s"`, `soak  = "10s"`, `soak  = "0s"`, `interval  = "1s"`, `interval  = "1ms"`).Replace(s)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	cfg, diags := policies.Load(dir)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	j, err := rotator.OpenBoltJournal(cfg.StateDir)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	var mu sync.Mutex
	steps := map[rotator.Step]time.Duration{}
	counts := map[rotator.Step]int{}
	e, err := rotator.New(rotator.Options{Journal: j, Logger: zerolog.Nop(), Observers: []rotator.Observer{rotator.ObserverFunc(func(_ context.Context, ev rotator.Event) {
		if ev.Result == rotator.ResultOK && ev.Duration > 0 && ev.Step != rotator.StepDone {
			mu.Lock()
			steps[ev.Step] += ev.Duration
			counts[ev.Step]++
			mu.Unlock()
		}
	})}})
	if err != nil {
		b.Fatal(err)
	}
	e.SetPolicies(cfg.Policies)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		out, err := e.Rotate(ctx, "quickstart", rotator.RotateOptions{UntilDone: true})
		if err != nil || out.Result != "done" {
			b.Fatalf("rotation: %+v %v", out, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rotations/s")
	for s, d := range steps {
		b.ReportMetric(float64(d.Microseconds())/float64(counts[s])/1000, string(s)+"-ms")
	}
}
