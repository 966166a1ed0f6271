package prometheus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/testenv/authapp"
	"github.com/rekeyhq/rekey/testenv/promtest"
)

func decode(t *testing.T, src string) (*Probe, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "payments", Kind: "prometheus", BaseDir: t.TempDir(), DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	p, diags := New(env, f.Body)
	if p == nil {
		return nil, diags
	}
	return p.(*Probe), diags
}

func mustProbe(t *testing.T, src string) *Probe {
	t.Helper()
	p, diags := decode(t, src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"no condition", `address = "http://p:9090"
query = "up"`, "One condition required"},
		{"two conditions", `address = "http://p:9090"
query = "up"
fail_if = "result > 1"
pass_if = "result < 1"`, "One condition required"},
		{"condition does not parse", `address = "http://p:9090"
query = "up"
fail_if = "result >"`, "Invalid condition"},
		{"unknown condition variable", `address = "http://p:9090"
query = "up"
fail_if = "value > 1"`, `not "value"`},
		{"baseline without baseline", `address = "http://p:9090"
query = "up"
fail_if = "result > baseline"`, "set baseline = true"},
		{"unknown template variable", `address = "http://p:9090"
query = "up{key=\"{{ .Key }}\"}"
fail_if = "result > 1"`, "Unknown query variable"},
		{"credentials in address", `address = "http://u:pw@p:9090"
query = "up"
fail_if = "result > 1"`, "Credentials in address"},
		{"not a url", `address = "p:9090"
query = "up"
fail_if = "result > 1"`, "Invalid address"},
		{"negative failure limit", `address = "http://p:9090"
query = "up"
fail_if = "result > 1"
failure_limit = -1`, "Invalid failure_limit"},
		{"half basic auth", `address = "http://p:9090"
query = "up"
fail_if = "result > 1"
username = "rekey"`, "Basic authentication incomplete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := decode(t, tc.src)
			if !diags.HasErrors() {
				t.Fatal("accepted")
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("got %s, want %q", diags.Error(), tc.want)
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a source range: %s", d.Summary)
				}
			}
		})
	}
}

func TestScrapeIntervalAndDerivedDelay(t *testing.T) {
	yaml := "global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\nscrape_configs:\n- job_name: x\n  scrape_interval: 1s\n"
	if got := ScrapeInterval(yaml); got != 15*time.Second {
		t.Fatalf("scrape interval %s, want 15s", got)
	}
	if got := ScrapeInterval("scrape_configs: []\n"); got != fallbackScrapeInterval {
		t.Fatalf("without a global section: %s", got)
	}
	if got := longestRange(`sum(rate(a[5m])) / sum(rate(b[30s])) + max_over_time(c[1h:1m])`); got != time.Hour {
		t.Fatalf("longest range %s, want 1h", got)
	}
}

// fleet is the real setup: the test API, clients calling it, and a real
// Prometheus scraping it every second.
type fleet struct {
	prom     *promtest.Server
	upstream *authapp.Upstream
	mu       sync.Mutex
	valid    map[string]bool
}

func (f *fleet) accept(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.valid[key]
}

func (f *fleet) setValid(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.valid = map[string]bool{}
	for _, k := range keys {
		f.valid[k] = true
	}
}

func startFleet(t *testing.T) *fleet {
	promtest.Binary(t)
	f := &fleet{valid: map[string]bool{"old": true}}
	f.upstream = authapp.StartUpstream(t, f.accept)
	f.prom = promtest.Start(t, f.upstream.Target)
	return f
}

func (f *fleet) probe(t *testing.T, extra string) *Probe {
	return mustProbe(t, fmt.Sprintf("address = %q\n%s", f.prom.Addr, extra))
}

// check runs one measurement with a bounded context.
func check(t *testing.T, p *Probe, key string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Check(ctx, plugin.Key{ID: key})
}

// refusedShare is the share of requests refused. The numerator's
// `or vector(0)` makes "no refusal at all" a 0 rather than no data, while
// no traffic at all (an empty denominator) stays inconclusive.
const refusedShare = `(sum(rate(http_requests_total{code="401"}[5s])) or vector(0)) / sum(rate(http_requests_total[5s]))`

// TestAgainstPrometheus drives the probe against a real Prometheus that
// scrapes a real application. The scenarios share one server and run in
// order.
func TestAgainstPrometheus(t *testing.T) {
	f := startFleet(t)
	key := func(k string) func() (string, error) { return func() (string, error) { return k, nil } }

	// A series that does not exist yet: Prometheus answers an empty
	// vector. That must be inconclusive and never a pass, and with an
	// inconclusive_limit it ends the probe.
	t.Run("no data is inconclusive, never a pass", func(t *testing.T) {
		p := f.probe(t, `query = "sum(rate(http_requests_total{client=\"late\"}[5s]))"
fail_if = "result > 100"
initial_delay = "1ms"
inconclusive_limit = 2`)
		for i := 1; i <= 3; i++ {
			err := check(t, p, "k1")
			if !errors.Is(err, ErrInconclusive) {
				t.Fatalf("measurement %d of a missing series: %v, want inconclusive", i, err)
			}
			if got := plugin.IsPermanent(err); got != (i == 3) {
				t.Fatalf("measurement %d: permanent=%v (limit 2)", i, got)
			}
			if !strings.Contains(err.Error(), "no data") {
				t.Fatalf("the error does not say what was seen: %v", err)
			}
		}
		// The series appears: every measurement is inconclusive until
		// there is data, then it passes; none passes on no data.
		(&authapp.Client{Name: "late", Reload: true}).Run(t, f.upstream, 20*time.Millisecond, key("old"))
		p = f.probe(t, `query = "sum(rate(http_requests_total{client=\"late\"}[5s]))"
fail_if = "result > 1000"
initial_delay = "1ms"`)
		inconclusive := 0
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := check(t, p, "k2")
			if err == nil {
				break
			}
			if !errors.Is(err, ErrInconclusive) {
				t.Fatalf("before data: %v", err)
			}
			inconclusive++
			if time.Now().After(deadline) {
				t.Fatal("no data after 30s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if inconclusive == 0 {
			t.Fatal("the first measurement of a series that had just appeared passed: there cannot have been two samples yet")
		}
		t.Logf("%d inconclusive measurements before the first pass", inconclusive)
	})

	t.Run("NaN is inconclusive", func(t *testing.T) {
		p := f.probe(t, `query = "sum(rate(http_requests_total{client=\"nobody\"}[5s])) / sum(rate(http_requests_total{client=\"nobody\"}[5s])) or vector(0/0)"
fail_if = "result > 0.01"
initial_delay = "1ms"`)
		err := check(t, p, "k3")
		if !errors.Is(err, ErrInconclusive) || !strings.Contains(err.Error(), "NaN") {
			t.Fatalf("NaN: %v", err)
		}
	})

	// Every instance uses the valid key: the refused share is 0.
	good := &authapp.Client{Name: "good", Reload: true}
	good.Run(t, f.upstream, 20*time.Millisecond, key("old"))
	stale := &authapp.Client{Name: "stale"}
	stale.Run(t, f.upstream, 20*time.Millisecond, key("old"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.prom.WaitForData(ctx, t, refusedShare)

	t.Run("all instances accepted: pass", func(t *testing.T) {
		p := f.probe(t, `query = "`+strings.ReplaceAll(refusedShare, `"`, `\"`)+`"
fail_if = "result > 0.01"
initial_delay = "1ms"`)
		if err := check(t, p, "k4"); err != nil {
			t.Fatalf("all requests accepted, yet: %v", err)
		}
	})

	t.Run("baseline measured first and compared", func(t *testing.T) {
		p := f.probe(t, `query = "`+strings.ReplaceAll(refusedShare, `"`, `\"`)+`"
pass_if = "result <= baseline + 0.05"
baseline = true
initial_delay = "1ms"`)
		if err := check(t, p, "k5"); err != nil {
			t.Fatalf("%v", err)
		}
		if st := p.stateFor("k5/"); st.baseline == nil || *st.baseline != 0 {
			t.Fatalf("baseline %v, want 0", st.baseline)
		}
	})

	// The stale instance's key is revoked: the upstream refuses it, and
	// the refused share shows it within a rate window.
	f.setValid("new")
	good.Run(t, f.upstream, 20*time.Millisecond, key("new"))
	t.Run("one stale instance: the condition fails and names what it saw", func(t *testing.T) {
		p := f.probe(t, `query = "`+strings.ReplaceAll(refusedShare, `"`, `\"`)+`"
fail_if = "result > 0.01"
initial_delay = "1ms"
failure_limit = 1`)
		var err error
		failures := 0
		deadline := time.Now().Add(30 * time.Second)
		for failures < 2 && time.Now().Before(deadline) {
			err = check(t, p, "k6")
			if errors.Is(err, ErrConditionMet) {
				failures++
				if got := plugin.IsPermanent(err); got != (failures == 2) {
					t.Fatalf("failure %d: permanent=%v with failure_limit 1", failures, got)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
		if failures < 2 {
			t.Fatalf("a stale instance was never seen: %v", err)
		}
		for _, want := range []string{"http_requests_total", "fail_if result > 0.01", "gave 0."} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if _, refused := stale.Counts(); refused == 0 {
			t.Fatal("the stale client saw no refusal: the test proves nothing")
		}
	})
}

func TestInitialDelayWaits(t *testing.T) {
	f := startFleet(t)
	p := f.probe(t, `query = "vector(0)"
fail_if = "result > 0"
initial_delay = "1500ms"`)
	start := time.Now()
	if err := check(t, p, "k"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 1500*time.Millisecond {
		t.Fatalf("measured after %s, before the initial delay", waited)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p2 := f.probe(t, `query = "vector(0)"
fail_if = "result > 0"
initial_delay = "1h"`)
	if err := p2.Check(ctx, plugin.Key{ID: "k"}); err == nil || !strings.Contains(err.Error(), "initial delay") {
		t.Fatalf("a check cut short by its context: %v", err)
	}
	// Without initial_delay: one scrape interval (read from the server)
	// plus the query's longest range.
	p3 := f.probe(t, `query = "sum(rate(x[7s]))"
fail_if = "result > 0"`)
	c, err := p3.client()
	if err != nil {
		t.Fatal(err)
	}
	d, err := p3.delay(context.Background(), c)
	if err != nil || d != promtest.ScrapeInterval+7*time.Second {
		t.Fatalf("derived delay %s (%v), want %s", d, err, promtest.ScrapeInterval+7*time.Second)
	}
}
