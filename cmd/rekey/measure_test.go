package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// writePolicies writes n policies (random provider, file sink, exec probe)
// into dir, 100 per file, with the given window.
func writePolicies(tb testing.TB, dir string, n int, window string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`state_dir = "state"` + "\n")
	if os.Getenv("REKEY_BENCH_NO_MLOCK") != "" {
		b.WriteString("disable_mlock = true\n")
	}
	file := 0
	flush := func() {
		if b.Len() == 0 {
			return
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%04d.hcl", file)), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		file++
		b.Reset()
	}
	for i := range n {
		fmt.Fprintf(&b, `policy "p%05d" {
  every  = "30d"
  window = %q
  provider "random" {}
  sink "file" {
    path   = "out/p%05d.key"
    format = "raw"
  }
  probe "exec" {
    command = ["true"]
  }
}
`, i, window, i)
		if (i+1)%100 == 0 {
			flush()
		}
	}
	flush()
	os.MkdirAll(filepath.Join(dir, "out"), 0o700)
}

// BenchmarkReload10000Policies measures what SIGHUP costs with 10,000
// policies: loading, validating and checking the files of the new set.
func BenchmarkReload10000Policies(b *testing.B) {
	dir := b.TempDir()
	writePolicies(b, dir, 10000, "Mon-Sun 00:00-23:59 UTC")
	if _, diags := policies.Load(dir); diags.HasErrors() {
		b.Fatal(diags)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		next, err := reloadConfig(dir)
		if err != nil || len(next.Policies) != 10000 {
			b.Fatalf("reload failed: %v", err)
		}
		next.Connections.Close()
	}
}

// BenchmarkIdleDaemon1000Policies starts the daemon with 1,000 policies
// that wait for their window, lets it settle, and reports its resident
// memory and CPU use while idle (Linux /proc). Run with -benchtime=1x.
func BenchmarkIdleDaemon1000Policies(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	closed := (time.Now().UTC().Hour() + 12) % 24
	dir := b.TempDir()
	writePolicies(b, dir, 1000, fmt.Sprintf("Mon-Sun %02d:00-%02d:30 UTC", closed, closed))
	q := &qsEnv{t: &testing.T{}, dir: dir}
	for range b.N {
		cmd := q.command(nil, "run", "-config", dir)
		cmd.Stdout, cmd.Stderr = nil, nil
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		time.Sleep(5 * time.Second)
		cpu0 := cpuTicks(b, pid)
		t0 := time.Now()
		time.Sleep(10 * time.Second)
		cpu1 := cpuTicks(b, pid)
		rss := rssKiB(b, pid)
		cmd.Process.Kill()
		cmd.Wait()
		secs := time.Since(t0).Seconds()
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(100*float64(cpu1-cpu0)/100/secs, "cpu-%")
	}
}

func cpuTicks(tb testing.TB, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rssKiB(tb testing.TB, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
