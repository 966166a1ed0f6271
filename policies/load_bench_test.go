//go:build unix

package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeBenchConfig(b *testing.B, dir string, files, policies int) {
	b.Helper()
	per := policies / files
	for i := range files {
		var s strings.Builder
		for j := range per {
			n := i*per + j
			fmt.Fprintf(&s, `policy "p%05d" {
  every  = "30d"
  window = "Mon-Thu 09:00-16:00 Europe/Berlin"
  jitter = "1h"

  provider "test" {
    name = "svc-%05d"
  }

  sink "test" {
    path   = "/srv/app-%05d/key.env"
    fields = { KEY_ID = "id", KEY_SECRET = "secret" }
  }

  probe "test_key" {}

  reload "test" {
    command = ["systemctl", "reload", "app-%05d"]
  }

  probe "test" {
    url       = "http://127.0.0.1:8080/healthz"
    timeout   = "5m"
    successes = 2
  }

  revoke {
    after = "1h"
    soak  = "1d"
  }
}

`, n, n, n, n)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("policies-%03d.hcl", i)), []byte(s.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad10000Policies loads 10,000 policies spread over 100 files.
// It reports the heap still in use with the configuration loaded
// (retained-MB) and the CPU time per load (cpu-ns/op) besides the usual
// figures.
func BenchmarkLoad10000Policies(b *testing.B) {
	dir := b.TempDir()
	writeBenchConfig(b, dir, 100, 10000)
	b.ReportAllocs()
	var (
		retained uint64
		cpu      time.Duration
	)
	for b.Loop() {
		before := cpuTime()
		cfg, diags := Load(dir)
		if diags.HasErrors() || len(cfg.Policies) != 10000 {
			b.Fatalf("load failed: %v", diags)
		}
		b.StopTimer()
		cpu += cpuTime() - before
		var with, without runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&with)
		runtime.KeepAlive(cfg)
		cfg = nil
		runtime.GC()
		runtime.ReadMemStats(&without)
		if with.HeapAlloc > without.HeapAlloc {
			retained = max(retained, with.HeapAlloc-without.HeapAlloc)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(retained)/(1<<20), "retained-MB")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process has used, user and system, all
// threads (the garbage collector's included): on a busy machine it says
// more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoadScaling loads 1,000 and 10,000 policies (100 per file) and
// reports the time per policy, which stays flat when loading is linear.
func BenchmarkLoadScaling(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			writeBenchConfig(b, dir, n/100, n)
			b.ReportAllocs()
			for b.Loop() {
				cfg, diags := Load(dir)
				if diags.HasErrors() || len(cfg.Policies) != n {
					b.Fatalf("load failed: %v", diags)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/policy")
		})
	}
}
