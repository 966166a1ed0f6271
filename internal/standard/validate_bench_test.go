//go:build unix

package standard_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// adversarialFiles are files of at most 1 MiB meant to make validation
// slow, deep or loud, with the whole standard plugin set behind them. The
// goal (issue 8) is at most 1 s each. Most are just under
// policies.MaxFileSize, the largest file that gets parsed.
func adversarialFiles() map[string]string {
	const mb = policies.MaxFileSize
	fill := func(unit string, extra int) string { return strings.Repeat(unit, (mb-extra)/len(unit)) }
	probeList := func(n int) string {
		var b strings.Builder
		b.WriteString("policy \"p\" {\n  every = \"30d\"\n  provider \"random\" {\n    length = 32\n  }\n  sink \"file\" {\n    path = \"/tmp/rekey-bench/x\"\n    format = \"env\"\n  }\n")
		for i := range n {
			fmt.Fprintf(&b, "  probe \"exec\" {\n    command = [\"/bin/true\"%s]\n  }\n", strings.Repeat(fmt.Sprintf(", \"a%d\"", i), policies.MaxListLength-1))
		}
		b.WriteString("}\n")
		return b.String()
	}
	var valid strings.Builder
	for i := 0; valid.Len() < mb-400; i++ {
		fmt.Fprintf(&valid, "policy \"p%d\" {\n  every = \"30d\"\n  provider \"random\" {\n    field = \"f%d\"\n  }\n  sink \"file\" {\n    path = \"/tmp/rekey-bench/%d\"\n    format = \"env\"\n  }\n  probe \"exec\" {\n    command = [\"/bin/true\"]\n  }\n}\n", i, i, i)
	}
	var typos strings.Builder
	for i := 0; typos.Len() < mb-200; i++ {
		fmt.Fprintf(&typos, "policy \"p%d\" {\n  evrey = \"30d\"\n}\n", i)
	}
	junk := make([]byte, mb-1)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.UintN(256))
	}
	return map[string]string{
		"too-large-1MB":        strings.Repeat("policy \"p\" {}\n", 1<<20/16),
		"brackets":             "x = " + fill("[", 10) + "\n",
		"calls":                "x = " + fill("upper(", 10) + "\n",
		"not":                  "x = " + fill("!", 10) + "true\n",
		"command-list-100k":    probeList(0)[:120] + "  probe \"exec\" {\n    command = [" + strings.Repeat(`"a",`, 100000) + "]\n  }\n}\n",
		"name-200KB":           `policy "` + strings.Repeat("n", 200_000) + `" {}` + "\n",
		"lists-at-the-limit":   probeList(policies.MaxItemsPerFile/policies.MaxListLength - 1),
		"valid-policies":       valid.String(),
		"typos":                typos.String(),
		"binary-junk":          string(junk),
		"unterminated-strings": fill("x = \"\n", 10),
	}
}

// BenchmarkValidateAdversarial loads each adversarial file as rekey
// validate does (ns/op is one validation of that file; cpu-ns/op its CPU
// time, all threads, which says more on a busy machine).
func BenchmarkValidateAdversarial(b *testing.B) {
	dir := b.TempDir()
	for name, src := range adversarialFiles() {
		if len(src) > 1<<20 {
			b.Fatalf("%s has %d bytes", name, len(src))
		}
		path := filepath.Join(dir, name+".hcl")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				before := cpuTime()
				cfg, _ := policies.Load(path)
				cpu += cpuTime() - before
				if cfg != nil {
					_ = cfg.Connections.Close()
				}
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestAdversarialFilesFinish runs each adversarial file once: no crash,
// and the file is refused or loaded (timings are in the benchmark).
func TestAdversarialFilesFinish(t *testing.T) {
	dir := t.TempDir()
	for name, src := range adversarialFiles() {
		path := filepath.Join(dir, name+".hcl")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := policies.Load(path)
		switch {
		case name == "valid-policies" || name == "lists-at-the-limit":
			if diags.HasErrors() {
				t.Errorf("%s: %v", name, diags[0])
			}
		case !diags.HasErrors():
			t.Errorf("%s loaded", name)
		}
		if cfg != nil {
			_ = cfg.Connections.Close()
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
