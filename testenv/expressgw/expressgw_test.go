package expressgw

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestGateway checks the behaviour rekey's tests rely on: only loopback
// listens, a key the admin API made is accepted at the proxy, a wrong
// secret and a deactivated key are refused with 401, a re-activated key is
// accepted again, and a keyId chosen by the client is kept.
func TestGateway(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	defer backend.Close()
	g := Start(t, backend.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, u := range []string{g.AdminURL, g.ProxyURL} {
		_, port, _ := net.SplitHostPort(u[len("http://"):])
		for _, ip := range nonLoopback(t) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second)
			if err == nil {
				_ = c.Close()
				t.Errorf("the gateway answers on %s:%s; it must listen on 127.0.0.1 only", ip, port)
			}
		}
	}

	g.CreateUser(t, "orders-app")
	c := g.CreateKey(t, "orders-app", "rk-fixed-id")
	if c.KeyID != "rk-fixed-id" || c.KeySecret == "" || !c.IsActive {
		t.Fatalf("created credential: id %q, active %v, secret given %v", c.KeyID, c.IsActive, c.KeySecret != "")
	}
	call := func(secret string, want int) {
		t.Helper()
		got, err := g.Call(ctx, "/api/orders", c.KeyID, secret)
		if err != nil || got != want {
			t.Errorf("call: status %d (%v), want %d", got, err, want)
		}
	}
	call(c.KeySecret, http.StatusOK)
	call(c.KeySecret+"x", http.StatusUnauthorized)
	if _, err := g.Admin(ctx, http.MethodPut, "/credentials/key-auth/"+c.KeyID+"/status", map[string]bool{"status": false}, nil); err != nil {
		t.Fatal(err)
	}
	call(c.KeySecret, http.StatusUnauthorized)
	if _, err := g.Admin(ctx, http.MethodPut, "/credentials/key-auth/"+c.KeyID+"/status", map[string]bool{"status": true}, nil); err != nil {
		t.Fatal(err)
	}
	call(c.KeySecret, http.StatusOK)
	if n := hits.Load(); n != 2 {
		t.Errorf("the backend saw %d requests, want the 2 with an accepted key", n)
	}
	creds, err := g.Credentials(ctx, "orders-app")
	if err != nil || len(creds) != 1 {
		t.Fatalf("credentials: %d (%v)", len(creds), err)
	}
	if st, _ := g.Admin(ctx, http.MethodPut, "/credentials/key-auth/nope/status", map[string]bool{"status": false}, nil); st != http.StatusNotFound {
		t.Errorf("deactivating a missing credential: status %d, want 404", st)
	}
	if st, _ := g.Admin(ctx, http.MethodPost, "/credentials", map[string]any{"consumerId": "nobody", "type": "key-auth"}, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("a credential for a missing consumer: status %d, want 422", st)
	}
	t.Logf("startup %s", strconv.FormatFloat(g.Startup.Seconds(), 'f', 2, 64)+"s")
}

func nonLoopback(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}
