package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// stepTimer is an observer that sums the duration of each step's ok event.
type stepTimer struct {
	mu     sync.Mutex
	total  map[rotator.Step]time.Duration
	counts map[rotator.Step]int
}

func newStepTimer() *stepTimer {
	return &stepTimer{total: map[rotator.Step]time.Duration{}, counts: map[rotator.Step]int{}}
}

func (s *stepTimer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.total)
	clear(s.counts)
}

// Observe implements rotator.Observer.
func (s *stepTimer) Observe(_ context.Context, ev rotator.Event) {
	if ev.Result != rotator.ResultOK || ev.Duration <= 0 {
		return
	}
	step := ev.Step
	if step == rotator.StepDone {
		step = "rotation"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total[step] += ev.Duration
	s.counts[step]++
}

// report reports the mean latency of each step in milliseconds.
func (s *stepTimer) report(b *testing.B) {
	s.mu.Lock()
	defer s.mu.Unlock()
	steps := make([]string, 0, len(s.total))
	for st := range s.total {
		steps = append(steps, string(st))
	}
	sort.Strings(steps)
	for _, st := range steps {
		d := s.total[rotator.Step(st)]
		b.ReportMetric(float64(d.Microseconds())/float64(s.counts[rotator.Step(st)])/1000, st+"-ms")
	}
}

// benchRotations runs b.N complete rotations of policy and reports
// rotations per second and the mean latency of each step.
func benchRotations(b *testing.B, h *harness, policy string) {
	timer := newStepTimer()
	h.observers = append(h.observers, timer)
	p := h.start(nil)
	if out := h.rotate(p, policy); out.Result != "done" { // warm up: connections, first login
		b.Fatalf("warm-up rotation: %s at %s (%v)", out.Result, out.Step, out.Err)
	}
	timer.reset()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if out := h.rotate(p, policy); out.Result != "done" {
			b.Fatalf("rotation: %s at %s (%v)", out.Result, out.Step, out.Err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rotations/s")
	timer.report(b)
}

// BenchmarkVaultKVRotation: a random password written to Vault KV, checked
// by a dependent that reads it from KV; the old value needs no revocation.
func BenchmarkVaultKVRotation(b *testing.B) {
	h := newQuietHarness(b)
	v := startVault(b)
	v.put(b, "bench/db", map[string]string{"password": "the-initial-password-0123456789"})
	dep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := v.kv().Get(r.Context(), "bench/db")
		if err != nil || s.Data["password"] == "" {
			http.Error(w, "no password", http.StatusServiceUnavailable)
		}
	}))
	b.Cleanup(dep.Close)
	h.src = "state_dir = \"state\"\n\n" + v.block(h, "") + fmt.Sprintf(`
policy "db-password" {
  every = "30d"

  provider "random" {
    length = 32
    field  = "password"
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "bench/db"
  }

  probe "http" {
    target   = "dependent"
    url      = %q
    interval = "10ms"
  }

  revoke {
    after = "0s"
  }
}
`, dep.URL+"/healthz")
	benchRotations(b, h, "db-password")
}

// BenchmarkIAMRotation: an IAM access key written to Secrets Manager and
// tested with sts:GetCallerIdentity, the old key deleted at once.
func BenchmarkIAMRotation(b *testing.B) {
	h := newQuietHarness(b)
	a := startAWS(h, 0)
	_, id, sec := a.seedUser(iamUser)
	a.createSecret(iamSecretID, id, sec)
	h.src = iamSpec{aws: a}.hcl(h)
	benchRotations(b, h, iamPolicy)
}
