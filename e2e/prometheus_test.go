package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/authapp"
	"github.com/rekeyhq/rekey/testenv/promtest"
)

// promWorld is a fleet behind a real API: the quickstart's key service
// issues the keys, a file sink serves them, client instances call the API
// with the key they hold, and a real Prometheus scrapes the API's request
// counters, which the prometheus probe watches.
type promWorld struct {
	h        *harness
	store    string
	keyFile  string
	upstream *authapp.Upstream
	prom     *promtest.Server
}

// accept is the API's authentication: a key the key service holds active.
func (w *promWorld) accept(key string) bool {
	files, _ := filepath.Glob(filepath.Join(w.store, "*.key"))
	for _, f := range files {
		fields := map[string]string{}
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				fields[k] = v
			}
		}
		_ = fh.Close()
		if fields["secret"] == key && fields["status"] == "active" {
			return true
		}
	}
	return false
}

const refusedShareQuery = `(sum(rate(http_requests_total{code=\"401\"}[5s])) or vector(0)) / sum(rate(http_requests_total[5s]))`

func newPromWorld(t *testing.T) *promWorld {
	promtest.Binary(t)
	h := newHarness(t)
	ks, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "keyservice.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "keyservice.sh"), ks, 0o700); err != nil {
		t.Fatal(err)
	}
	w := &promWorld{h: h, store: filepath.Join(h.dir, "state", "keystore"), keyFile: filepath.Join(h.dir, "state", "app", "credentials.env")}
	w.upstream = authapp.StartUpstream(t, w.accept)
	w.prom = promtest.Start(t, w.upstream.Target)
	return w
}

func (w *promWorld) policy(query, revoke string) string {
	return fmt.Sprintf(`state_dir = %q

policy "api" {
  every = "30d"

  provider "exec" {
    create     = ["./keyservice.sh", "create"]
    list       = ["./keyservice.sh", "list"]
    delete     = ["./keyservice.sh", "delete"]
    deactivate = ["./keyservice.sh", "deactivate"]
    activate   = ["./keyservice.sh", "activate"]
    max_keys   = 2
    timeout    = "10s"
  }

  sink "file" {
    path   = %q
    format = "env"
    fields = { API_KEY = "api_key" }
  }

  probe "prometheus" {
    address       = %q
    query         = "%s"
    fail_if       = "result > 0.01"
    initial_delay = "6s"
    interval      = "1s"
    successes     = 2
    timeout       = "20s"
  }

  revoke {
    %s
  }
}
`, filepath.Join(w.h.dir, "state", "rekey"), w.keyFile, w.prom.Addr, query, revoke)
}

// clients starts n instances that reload and, when stale, one that read
// the key once and never again.
func (w *promWorld) clients(t *testing.T, n int, stale bool) (*authapp.Client, []*authapp.Client) {
	var good []*authapp.Client
	for i := 0; i < n; i++ {
		c := &authapp.Client{Name: fmt.Sprintf("app-%d", i), Reload: true}
		c.Run(t, w.upstream, 20*time.Millisecond, authapp.EnvFileKey(w.keyFile, "API_KEY"))
		good = append(good, c)
	}
	var s *authapp.Client
	if stale {
		s = &authapp.Client{Name: "app-stale"}
		s.Run(t, w.upstream, 20*time.Millisecond, authapp.EnvFileKey(w.keyFile, "API_KEY"))
	}
	return s, good
}

// seed makes the key the fleet starts with, before rekey manages the
// credential (rekey adopts it as the old key at its first rotation), and
// serves it in the key file.
func (w *promWorld) seed(t *testing.T) {
	cmd := exec.Command(filepath.Join(w.h.dir, "keyservice.sh"), "create")
	cmd.Env = append(os.Environ(), "REKEY_ROTATION_ID=seed")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("seeding a key: %v", err)
	}
	var created struct {
		Value struct {
			APIKey string `json:"api_key"`
		} `json:"value"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	w.h.secret("seed key", created.Value.APIKey)
	if err := os.WriteFile(w.keyFile, []byte("API_KEY="+created.Value.APIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *promWorld) waitData(t *testing.T) {
	w.prom.WaitForData(w.h.ctx, t, strings.ReplaceAll(refusedShareQuery, `\"`, `"`))
}

func TestPrometheusProbe(t *testing.T) {
	t.Parallel()
	t.Run("every instance reloads: the rotation passes", func(t *testing.T) {
		t.Parallel()
		w := newPromWorld(t)
		w.h.src = w.policy(refusedShareQuery, `after = "0s"`)
		w.seed(t)
		p := w.h.start(nil)
		_, good := w.clients(t, 3, false)
		w.waitData(t)
		start := time.Now()
		out := w.h.rotate(p, "api")
		if out.Result != rotator.OutcomeDone {
			t.Fatalf("rotation with every instance reloading: %s at %s: %v", out.Result, out.Step, out.Err)
		}
		t.Logf("passed in %s", time.Since(start).Round(100*time.Millisecond))
		for _, c := range good {
			if _, refused := c.Counts(); refused != 0 {
				t.Errorf("%s had %d calls refused", c.Name, refused)
			}
		}
	})

	t.Run("one instance never reloads: the soak fails and the old key is re-activated", func(t *testing.T) {
		t.Parallel()
		w := newPromWorld(t)
		w.h.src = w.policy(refusedShareQuery, `after = "0s"
    soak  = "10s"`)
		w.seed(t)
		p := w.h.start(nil)
		stale, _ := w.clients(t, 3, true)
		w.waitData(t)
		start := time.Now()
		out := w.h.rotate(p, "api")
		if out.Result != rotator.OutcomeStuck {
			t.Fatalf("rotation with a stale instance: %s at %s: %v, want stuck after re-activation", out.Result, out.Step, out.Err)
		}
		var reactivated *rotator.Event
		for _, ev := range w.h.eventLog() {
			if ev.Step == rotator.StepSoak && ev.Result == rotator.ResultReactivated {
				reactivated = &ev
			}
		}
		if reactivated == nil {
			t.Fatal("no reactivated event")
		}
		if !strings.Contains(reactivated.Error, "condition failed") || !strings.Contains(reactivated.Error, "fail_if result > 0.01") {
			t.Fatalf("the reactivation does not say what the query saw: %q", reactivated.Error)
		}
		// Re-activated: the stale instance is accepted again.
		_, before := stale.Counts()
		time.Sleep(500 * time.Millisecond)
		ok1, _ := stale.Counts()
		time.Sleep(500 * time.Millisecond)
		ok2, after := stale.Counts()
		if ok2 <= ok1 || after-before > 30 {
			t.Fatalf("the stale instance is still refused after re-activation (ok %d -> %d, refused %d -> %d)", ok1, ok2, before, after)
		}
		t.Logf("stuck after %s", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("one instance never reloads, no soak: the watch after revoke raises the alert", func(t *testing.T) {
		t.Parallel()
		w := newPromWorld(t)
		w.h.src = w.policy(refusedShareQuery, `after = "0s"
    watch = "30s"`)
		w.seed(t)
		p := w.h.start(nil)
		stale, _ := w.clients(t, 3, true)
		w.waitData(t)
		start := time.Now()
		out := w.h.rotate(p, "api")
		if out.Result != rotator.OutcomeDone {
			t.Fatalf("rotation: %s at %s: %v", out.Result, out.Step, out.Err)
		}
		if _, refused := stale.Counts(); refused == 0 {
			t.Fatal("the stale instance was never refused: the test proves nothing")
		}
		var alert *rotator.Event
		for _, ev := range w.h.eventLog() {
			if ev.Step == rotator.StepWatch && ev.Result == rotator.ResultFailed {
				alert = &ev
			}
		}
		if alert == nil {
			t.Fatal("no watch_failed event although an instance holds the revoked key")
		}
		for _, want := range []string{"after the old key was revoked", "condition failed", "fail_if result > 0.01"} {
			if !strings.Contains(alert.Error, want) {
				t.Errorf("the alert %q does not say %q", alert.Error, want)
			}
		}
		if st := w.h.state(p, "api"); st.Alert == "" {
			t.Fatal("the policy carries no alert after a failed watch")
		}
		t.Logf("alert raised %s after the rotation started", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("no data: inconclusive, the rotation does not proceed on it", func(t *testing.T) {
		t.Parallel()
		w := newPromWorld(t)
		w.h.src = w.policy(`sum(rate(http_requests_total{client=\"nobody\"}[5s]))`, `after = "0s"`)
		w.seed(t)
		p := w.h.start(nil)
		_, _ = w.clients(t, 1, false)
		w.waitData(t)
		before := w.h.state(p, "api").CurrentKeyID
		out := w.h.rotate(p, "api")
		// Rolled back, or, since the restored key cannot be proven either
		// (the same query has no data), stuck with both keys kept: never
		// committed on no data.
		if out.Result != rotator.OutcomeRolledBack && out.Result != rotator.OutcomeStuck {
			t.Fatalf("a rotation judged on no data: %s at %s: %v", out.Result, out.Step, out.Err)
		}
		if out.Err == nil || !strings.Contains(out.Err.Error(), "inconclusive: no data") {
			t.Fatalf("the outcome does not say the data was inconclusive: %v", out.Err)
		}
		if hasEvent(w.h.eventLog(), rotator.StepCommit, rotator.ResultOK) {
			t.Fatal("committed on no data")
		}
		if after := w.h.state(p, "api").CurrentKeyID; after != before {
			t.Fatalf("the current key changed from %s to %s on no data", before, after)
		}
	})
}
