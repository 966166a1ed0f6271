// Package authapp is a small real application for tests that watch
// dependents' authentication failures: an API (the upstream) that accepts a
// request only when its bearer key is one the key service currently
// accepts, and exports `http_requests_total{code,client}` for Prometheus to
// scrape; and client instances that call it with the key they hold.
//
// A client that reloads reads the key from the sink before every request;
// a stale client read it once at start and never again, like the instance
// that never got the reload. When the stale client's key is deactivated or
// revoked, the upstream answers it 401 and the failure rate shows in
// Prometheus.
package authapp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Upstream is the API the clients call.
type Upstream struct {
	// URL is the base URL, such as http://127.0.0.1:41234.
	URL string
	// Target is host:port, for a Prometheus scrape config.
	Target string

	requests *prometheus.CounterVec
}

// StartUpstream serves the API on 127.0.0.1 until the test ends. accept
// reports whether a key is currently valid at the key service.
func StartUpstream(t testing.TB, accept func(key string) bool) *Upstream {
	t.Helper()
	reg := prometheus.NewRegistry()
	u := &Upstream{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "Requests to the test API by status code and client.",
	}, []string{"code", "client"})}
	reg.MustRegister(u.requests)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		client := r.Header.Get("X-Client")
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		code := http.StatusOK
		if !ok || key == "" || !accept(key) {
			code = http.StatusUnauthorized
		}
		u.requests.WithLabelValues(strconv.Itoa(code), client).Inc()
		w.WriteHeader(code)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	u.Target = ln.Addr().String()
	u.URL = "http://" + u.Target
	return u
}

// Count returns how many requests got code, for cross-checking what
// Prometheus reports.
func (u *Upstream) Count(code int, client string) float64 {
	c, err := u.requests.GetMetricWithLabelValues(strconv.Itoa(code), client)
	if err != nil {
		return 0
	}
	return testutil.ToFloat64(c)
}

// Client calls the upstream every Every with the key it holds.
type Client struct {
	Name string
	// Reload makes the client read the key before every request; without
	// it, the key is read once, at start.
	Reload bool

	mu      sync.Mutex
	ok, bad int
}

// Counts returns the numbers of accepted and refused calls so far.
func (c *Client) Counts() (ok, refused int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.bad
}

// Run calls the upstream every `every` with the key keyFn returns, until
// the test ends; the test owns the goroutine and waits for it.
func (c *Client) Run(t testing.TB, u *Upstream, every time.Duration, keyFn func() (string, error)) {
	t.Helper()
	key, err := keyFn()
	if err != nil {
		t.Fatalf("client %s: reading the key: %v", c.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if c.Reload {
				if k, err := keyFn(); err == nil {
					key = k
				}
			}
			c.call(ctx, u, key)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (c *Client) call(ctx context.Context, u *Upstream, key string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL+"/api", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Client", c.Name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	_ = resp.Body.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp.StatusCode == http.StatusOK {
		c.ok++
	} else {
		c.bad++
	}
}

// EnvFileKey returns a key function reading variable name from an env-format
// file (as the file sink writes it with format = "env").
func EnvFileKey(path, name string) func() (string, error) {
	return func() (string, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+"="); ok {
				return strings.Trim(v, `"'`), nil
			}
		}
		return "", errors.New("no " + name + " in " + path)
	}
}
