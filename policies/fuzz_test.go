package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// seedFiles returns every fixture under testdata, for the fuzz corpora.
func seedFiles(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".hcl") {
			return err
		}
		b, err := os.ReadFile(p)
		seeds = append(seeds, b)
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	return seeds
}

// FuzzLoad loads arbitrary sources and renders their diagnostics; nothing
// may panic, and a configuration comes back exactly when there is no error.
func FuzzLoad(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		l := &Loader{LookupEnv: testEnv}
		cfg, diags := l.LoadSources(map[string][]byte{"testdata/fuzz.hcl": src})
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("config %v with errors %v", cfg != nil, diags.HasErrors())
		}
		var text bytes.Buffer
		if err := WriteDiagnostics(&text, l.Files(), diags, true); err != nil {
			t.Fatal(err)
		}
		js, err := DiagnosticsJSON(l.Files(), diags)
		if err != nil || !json.Valid(js) {
			t.Fatalf("invalid JSON %q: %v", js, err)
		}
		if cfg != nil {
			if err := cfg.Connections.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzFormat formats arbitrary sources: no panic, and formatting a
// formatted source changes nothing.
func FuzzFormat(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, diags := Format(src, "fuzz.hcl")
		if diags.HasErrors() {
			return
		}
		again, diags := Format(out, "fuzz.hcl")
		if diags.HasErrors() {
			t.Fatalf("formatted source does not parse: %v\n%s", diags, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"Mon-Thu 09:00-16:00 Europe/Berlin", "Fri 22:00-02:00", "daily 00:00-24:00", "Sat,Sun 02:30-03:30 America/New_York"} {
		f.Add(s, int64(1748865600))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		at := time.Unix(unix%(400*365*24*3600), 0)
		got := w.NextOpen(at)
		if got.IsZero() {
			for _, d := range w.Days {
				if d {
					t.Fatalf("%q.NextOpen(%v) found nothing", s, at)
				}
			}
			return
		}
		if got.Before(at) || !w.Contains(got) {
			t.Fatalf("%q.NextOpen(%v) = %v is not open", s, at, got)
		}
	})
}

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
// (retained-MB) besides the usual allocation figures.
func BenchmarkLoad10000Policies(b *testing.B) {
	dir := b.TempDir()
	writeBenchConfig(b, dir, 100, 10000)
	b.ReportAllocs()
	var retained uint64
	for b.Loop() {
		cfg, diags := Load(dir)
		if diags.HasErrors() || len(cfg.Policies) != 10000 {
			b.Fatalf("load failed: %v", diags)
		}
		b.StopTimer()
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
}
