package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// requestCounter is a reverse proxy in front of Vault that counts the
// requests rekey makes, by method and path.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts, c.total = map[string]int{}, 0
}

func (c *requestCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %4d %s", c.counts[k], k)
	}
	return b.String()
}

// BenchmarkVaultRequests counts the Vault requests of one AppRole secret
// id → KV rotation (vault_approle_secret_id provider, vault_kv sink, old
// secret id destroyed at once), through a counting proxy in front of the
// real Vault server, and reports them per rotation.
func BenchmarkVaultRequests(b *testing.B) {
	h := newQuietHarness(b)
	v := startVault(b)
	srv := v.srv
	srv.EnableAppRole(b, "approle")
	srv.CreateRole(b, "approle", "app", map[string]any{"token_policies": "default"})
	srv.NewSecretID(b, "approle", "app")
	target, err := url.Parse(srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	rc := &requestCounter{}
	rc.reset()
	proxy := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.counts[r.Method+" "+r.URL.Path]++
		rc.total++
		rc.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(ps.Close)
	dep := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(dep.Close)
	h.secret("the Vault root token", srv.RootToken)
	h.src = fmt.Sprintf(`state_dir = "state"

vault "main" {
  address = %q
  auth "token_file" {
    path = %q
  }
}

policy "approle" {
  every = "30d"

  provider "vault_approle_secret_id" {
    connection = vault.main
    role_name  = "app"
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "bench/approle"
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
`, ps.URL, h.writeFile("vault-token", srv.RootToken+"\n"), dep.URL)
	p := h.start(nil)
	if out := h.rotate(p, "approle"); out.Result != "done" {
		b.Fatalf("warm-up rotation: %s at %s (%v)", out.Result, out.Step, out.Err)
	}
	warm := rc.summary()
	rc.reset()
	b.ResetTimer()
	for range b.N {
		if out := h.rotate(p, "approle"); out.Result != "done" {
			b.Fatalf("rotation: %s at %s (%v)", out.Result, out.Step, out.Err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rc.total)/float64(b.N), "requests/rotation")
	b.Logf("first rotation (new connection):%s\nthen %d rotations:%s", warm, b.N, rc.summary())
}
