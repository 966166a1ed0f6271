package policies

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
// may panic or overflow the stack, and a configuration comes back exactly
// when there is no error. The seeds include the deeply nested and
// oversized inputs of TestInputBounds, and fragments of them for the
// fuzzer to mutate.
func FuzzLoad(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s)
	}
	for _, c := range adversarial() {
		f.Add([]byte(c.src))
		f.Add([]byte(c.src[:min(len(c.src), 300)]))
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
