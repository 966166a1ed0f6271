package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/kongemu"
)

const kongPolicy = "orders-kong-key"

// kongWorld is examples/kong-key-auth pointed at the Kong Admin API
// emulator (Kong cannot run here), with an application calling through the
// emulator's key-auth proxy with the key the sink serves.
type kongWorld struct {
	h        *harness
	emu      *kongemu.Server
	sinkPath string
	seedID   string
	seedKey  string

	srv      *httptest.Server
	fail     atomic.Bool
	mu       sync.Mutex
	key      string
	calls    atomic.Int64
	rejected atomic.Int64
	stop     context.CancelFunc
	done     chan struct{}
}

func newKongWorld(h *harness) *kongWorld {
	t := h.t
	w := &kongWorld{h: h, emu: kongemu.Start(t), sinkPath: filepath.Join(h.dir, "kong-key"), done: make(chan struct{})}
	const token = "kong-admin-token-e2e-3f9a1c7b"
	h.secret("the Kong admin token", token)
	w.emu.AddWorkspace("payments")
	w.emu.AddConsumer("payments", "orders-app")
	w.emu.SetToken(token, "")
	seed := w.createSeed(token)
	if err := os.WriteFile(w.sinkPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	w.key = seed
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	go w.run(ctx)
	t.Cleanup(w.halt)

	src, err := os.ReadFile(filepath.Join("..", "examples", "kong-key-auth", "rekey.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, r := range [][2]string{
		{"https://kong-admin.internal:8444", w.emu.URL},
		{`    ca_file   = "/etc/ssl/internal/ca.pem"` + "\n", ""},
		{`    ca_file       = "/etc/ssl/internal/ca.pem"` + "\n", ""},
		{"/etc/rekey/kong-admin-token", h.writeFile("kong-token", token+"\n")},
		{"/etc/orders/kong-key", w.sinkPath},
		{`    owner  = "orders"` + "\n", ""},
		{"https://kong.internal:8443/orders/health", w.emu.URL + "/proxy/orders/health"},
		{`command = ["systemctl", "reload", "orders.service"]`, fmt.Sprintf("command = [%q]\n    env     = { %s = %q }", exe, helperEnv, w.srv.URL+"/reload")},
		{`    url           = "https://orders.internal:8443/healthz"`, `    url           = "https://orders.internal:8443/healthz"
    timeout       = "20s"
    interval      = "100ms"`},
		{"https://orders.internal:8443/healthz", w.srv.URL + "/healthz"},
		{`    after = "1h"`, `    after = "0s"`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the example no longer contains %q", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	h.src = "state_dir = \"state\"\n\n" + s
	return w
}

// createSeed makes the key in use before rekey, straight at the emulator.
func (w *kongWorld) createSeed(token string) string {
	w.h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.emu.URL+"/payments/consumers/orders-app/key-auth", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Kong-Admin-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		w.h.t.Fatalf("creating the seed key: %v", err)
	}
	_ = resp.Body.Close()
	c := w.emu.Credentials("payments", "orders-app")[0]
	w.seedID, w.seedKey = c.ID, c.Key
	w.h.secret("the seed key", c.Key)
	w.h.keyID("the seed key id", c.ID)
	return c.Key
}

func (w *kongWorld) halt() {
	w.stop()
	<-w.done
}

func (w *kongWorld) call(ctx context.Context) int {
	w.mu.Lock()
	key := w.key
	w.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.emu.URL+"/proxy/orders", nil)
	req.Header.Set("apikey", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	w.calls.Add(1)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		w.rejected.Add(1)
	}
	return resp.StatusCode
}

func (w *kongWorld) run(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		w.call(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (w *kongWorld) serve(rw http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/reload":
		b, err := os.ReadFile(w.sinkPath)
		if err != nil {
			http.Error(rw, "reading the key failed", http.StatusServiceUnavailable)
			return
		}
		w.mu.Lock()
		w.key = string(b)
		w.mu.Unlock()
	case "/healthz":
		w.mu.Lock()
		onSeed := w.key == w.seedKey
		w.mu.Unlock()
		if (w.fail.Load() && !onSeed) || w.call(r.Context()) != http.StatusOK {
			http.Error(rw, "failing", http.StatusBadGateway)
		}
	}
}

// check: the sink and the application hold live keys; every credential is
// known to the journal.
func (w *kongWorld) check(when string, p *proc) {
	t := w.h.t
	t.Helper()
	if w.call(w.h.ctx) != http.StatusOK {
		t.Errorf("%s: the proxy refuses the application's key", when)
	}
	b, _ := os.ReadFile(w.sinkPath)
	live := map[string]bool{}
	for _, c := range w.emu.Credentials("payments", "orders-app") {
		w.h.secret("a Kong key", c.Key)
		w.h.keyID("a Kong key id", c.ID)
		live[c.Key] = true
	}
	if !live[string(b)] {
		t.Errorf("%s: the sink serves a key Kong does not hold", when)
	}
	if p == nil {
		return
	}
	st := w.h.state(p, kongPolicy)
	known := map[string]bool{w.seedID: true, st.CurrentKeyID: true}
	for _, id := range st.Retired {
		known[id] = true
	}
	if a := st.Active; a != nil {
		known[a.NewKeyID] = true
		for _, id := range a.OldKeyIDs {
			known[id] = true
		}
	}
	for _, c := range w.emu.Credentials("payments", "orders-app") {
		if !known[c.ID] {
			t.Errorf("%s: Kong holds credential %s, which the journal does not know (an orphan)", when, secret.Mask(c.ID))
		}
	}
}

func (w *kongWorld) end(p *proc) {
	t := w.h.t
	t.Helper()
	w.check("at the end", p)
	st := w.h.state(p, kongPolicy)
	creds := w.emu.Credentials("payments", "orders-app")
	if len(creds) != 1 || creds[0].ID != st.CurrentKeyID {
		t.Errorf("at the end Kong holds %d credentials, want exactly the current key %s", len(creds), secret.Mask(st.CurrentKeyID))
	}
	w.halt()
	if n := w.rejected.Load(); n != 0 {
		t.Errorf("the proxy refused %d of the application's %d calls", n, w.calls.Load())
	}
}

// TestKongRotation rotates examples/kong-key-auth twice against the Kong
// Admin API emulator while the application calls through its proxy.
func TestKongRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := newKongWorld(h)
	p := h.start(nil)
	for i := range 2 {
		if out := h.rotate(p, kongPolicy); out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)\nevents: %v", i+1, out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
		}
	}
	w.end(p)
}

// TestKongCrashAtEveryFailpoint is the crash matrix for the kong provider
// (see TestGatewayCrashAtEveryFailpoint), with orphans found by the
// rotation id in the credentials' tags.
func TestKongCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	for _, fp := range rotator.Failpoints {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			w := newKongWorld(h)
			if strings.HasPrefix(fp, "deactivate.") {
				t.Skip("Kong cannot deactivate a key-auth credential: the provider has no deactivate step")
			}
			if strings.HasPrefix(fp, "rollback.") {
				w.fail.Store(true) // the dependent fails with the new key: the first attempt rolls back
			}
			crashed := func() (crashed any) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() { crashed = recover() }()
				out := h.rotate(p, kongPolicy)
				t.Logf("the rotation ended without reaching the failpoint: %s at %s (%v)", out.Result, out.Step, out.Err)
				return nil
			}()
			if crashed != "failpoint "+fp {
				t.Fatalf("the engine did not crash at the failpoint: %v", crashed)
			}
			w.fail.Store(false)
			w.check("after the crash", nil)
			p := h.start(nil)
			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			w.check("after reconciling", p)
			if out := h.rotate(p, kongPolicy); out.Result != "done" {
				t.Fatalf("rotation after recovery: %s at %s (%v)", out.Result, out.Step, out.Err)
			}
			w.end(p)
		})
	}
}
