package e2e

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/rekeyhq/rekey/testenv/expressgw"
)

// gwPolicy is the policy of examples/http-express-gateway.
const gwPolicy = "orders-gateway-key"

// gwWorld is one consumer of a shared, real Express Gateway, rotated by
// the http provider as configured in examples/http-express-gateway, and
// an application that keeps calling an API through the gateway with the
// key the file sink serves.
type gwWorld struct {
	h        *harness
	g        *expressgw.Gateway
	consumer string
	sinkPath string
	app      *gwApp
	seedID   string
}

// gwApp is the application: it reads its key from the sink file at start
// and on POST /reload, calls the gateway continuously, and counts the
// calls the gateway refused (401 or 403). GET /healthz makes one call
// with its key: the dependent probe.
type gwApp struct {
	w    *gwWorld
	srv  *httptest.Server
	fail atomic.Bool

	mu      sync.Mutex
	id, sec string
	reloads int

	calls, rejected atomic.Int64
	rejectedKeys    sync.Map // masked key id -> true
	stop            context.CancelFunc
	done            chan struct{}
}

func newGatewayBackend(t *testing.T) *httptest.Server {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("orders: ok\n"))
	}))
	t.Cleanup(backend.Close)
	return backend
}

// newGWWorld makes the consumer, its first key (in use before rekey), the
// sink file with it, the application, and the policy source.
func newGWWorld(h *harness, g *expressgw.Gateway, consumer string) *gwWorld {
	t := h.t
	w := &gwWorld{h: h, g: g, consumer: consumer, sinkPath: filepath.Join(h.dir, "gateway-key.json")}
	g.CreateUser(t, consumer)
	seed := g.CreateKey(t, consumer, "")
	w.seedID = seed.KeyID
	h.secret("the seed key's secret", seed.KeySecret)
	h.keyID("the seed key id", seed.KeyID)
	b, _ := json.Marshal(map[string]string{"key_id": seed.KeyID, "key_secret": seed.KeySecret})
	if err := os.WriteFile(w.sinkPath, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	w.app = w.startApp()
	h.src = w.policy()
	return w
}

// policy is examples/http-express-gateway/rekey.hcl, pointed at this
// gateway, consumer, sink file and application.
func (w *gwWorld) policy() string {
	t := w.h.t
	src, err := os.ReadFile(filepath.Join("..", "examples", "http-express-gateway", "rekey.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, r := range [][2]string{
		{"http://127.0.0.1:9876", w.g.AdminURL},
		{"http://127.0.0.1:8080", w.g.ProxyURL},
		{"orders-app", w.consumer},
		{"/etc/orders/gateway-key.json", w.sinkPath},
		{`    owner  = "orders"` + "\n", ""},
		{`command = ["systemctl", "reload", "orders.service"]`, fmt.Sprintf("command = [%q]\n    env     = { %s = %q }", exe, helperEnv, w.app.srv.URL+"/reload")},
		{"http://127.0.0.1:7000/healthz", w.app.srv.URL + "/healthz"},
		{`    expect_status = 200
  }

  revoke {`, `    expect_status = 200
    timeout       = "20s"
    interval      = "100ms"
  }

  revoke {`},
		{`    after = "10m"
    soak  = "1h"`, `    after = "0s"
    soak  = "300ms"`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("the example no longer contains %q", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return "state_dir = \"state\"\n\n" + s
}

func (w *gwWorld) startApp() *gwApp {
	a := &gwApp{w: w, done: make(chan struct{})}
	if err := a.load(); err != nil {
		w.h.t.Fatal(err)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	w.h.t.Cleanup(a.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go a.run(ctx)
	w.h.t.Cleanup(a.halt)
	return a
}

func (a *gwApp) halt() {
	a.stop()
	<-a.done
}

func (a *gwApp) load() error {
	b, err := os.ReadFile(a.w.sinkPath)
	if err != nil {
		return err
	}
	var k struct {
		ID  string `json:"key_id"`
		Sec string `json:"key_secret"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return errors.New("the sink file is not the expected JSON")
	}
	a.mu.Lock()
	a.id, a.sec = k.ID, k.Sec
	a.mu.Unlock()
	return nil
}

func (a *gwApp) key() (string, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id, a.sec
}

// call makes one API call through the gateway with the cached key.
func (a *gwApp) call(ctx context.Context) (int, error) {
	id, sec := a.key()
	code, err := a.w.g.Call(ctx, "/api/orders", id, sec)
	if err != nil {
		return 0, err
	}
	a.calls.Add(1)
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		a.rejected.Add(1)
		a.rejectedKeys.Store(secret.Mask(id), true)
	}
	return code, nil
}

func (a *gwApp) run(ctx context.Context) {
	defer close(a.done)
	for {
		if _, err := a.call(ctx); err != nil && ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *gwApp) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/reload":
		if err := a.load(); err != nil {
			http.Error(w, "reading the key failed", http.StatusServiceUnavailable)
			return
		}
		a.mu.Lock()
		a.reloads++
		a.mu.Unlock()
	case r.URL.Path == "/healthz":
		if id, _ := a.key(); a.fail.Load() && id != a.w.seedID {
			http.Error(w, "the application fails with the new key (test)", http.StatusInternalServerError)
			return
		}
		code, err := a.call(r.Context())
		if err != nil || code != http.StatusOK {
			http.Error(w, fmt.Sprintf("the gateway answered %d", code), http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	default:
		http.NotFound(w, r)
	}
}

// activeKeys returns the consumer's active credentials at the gateway.
func (w *gwWorld) activeKeys() []expressgw.Credential {
	creds, err := w.g.Credentials(w.h.ctx, w.consumer)
	if err != nil {
		w.h.t.Fatalf("listing the gateway's credentials: %v", err)
	}
	var out []expressgw.Credential
	for _, c := range creds {
		w.h.keyID("a gateway key id", c.KeyID)
		w.h.secret("a gateway key secret", c.KeySecret)
		if c.IsActive {
			out = append(out, c)
		}
	}
	return out
}

// check asserts that the sink file and the application hold keys the
// gateway accepts.
func (w *gwWorld) check(when string) {
	t := w.h.t
	t.Helper()
	w.activeKeys()
	b, err := os.ReadFile(w.sinkPath)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	var k struct {
		ID  string `json:"key_id"`
		Sec string `json:"key_secret"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatalf("%s: the sink file is not JSON", when)
	}
	if code, err := w.g.Call(w.h.ctx, "/api/orders", k.ID, k.Sec); err != nil || code != http.StatusOK {
		t.Errorf("%s: the gateway answers %d (%v) to the key %s the sink serves", when, code, err, secret.Mask(k.ID))
	}
	if code, err := w.app.call(w.h.ctx); err != nil || code != http.StatusOK {
		t.Errorf("%s: the gateway answers %d (%v) to the application's key", when, code, err)
	}
}

// knownKeys asserts that every active key at the gateway is known to the
// journal (an orphan would be neither served nor ever revoked).
func (w *gwWorld) knownKeys(when string, st rotator.PolicyState) {
	t := w.h.t
	t.Helper()
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
	for _, c := range w.activeKeys() {
		if !known[c.KeyID] {
			t.Errorf("%s: the gateway holds active key %s, which the journal does not know (an orphan)", when, secret.Mask(c.KeyID))
		}
	}
}

func (w *gwWorld) end(p *proc) {
	t := w.h.t
	t.Helper()
	w.check("at the end")
	st := w.h.state(p, gwPolicy)
	w.knownKeys("at the end", st)
	keys := w.activeKeys()
	if len(keys) != 1 || keys[0].KeyID != st.CurrentKeyID {
		t.Errorf("at the end the gateway holds %d active keys, want exactly the journal's current key %s", len(keys), secret.Mask(st.CurrentKeyID))
	}
	if id, _ := w.app.key(); id != st.CurrentKeyID {
		t.Errorf("at the end the application uses %s, want the current key %s", secret.Mask(id), secret.Mask(st.CurrentKeyID))
	}
}

// TestGatewayRotation rotates an Express Gateway key-auth credential three
// times with the example policy while the application calls the API
// through the gateway: no call is refused, the old keys end deactivated,
// and the leak check finds no key secret anywhere rekey wrote.
func TestGatewayRotation(t *testing.T) {
	t.Parallel()
	g := expressgw.Start(t, newGatewayBackend(t).URL)
	h := newHarness(t)
	w := newGWWorld(h, g, "orders-app")
	p := h.start(nil)
	for i := range 3 {
		out := h.rotate(p, gwPolicy)
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)\nevents: %v", i+1, out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
		}
		w.check(fmt.Sprintf("after rotation %d", i+1))
	}
	w.end(p)
	st := h.state(p, gwPolicy)
	if !strings.HasPrefix(st.CurrentKeyID, "rekey-") {
		t.Errorf("the current key id %s does not carry the rotation id", secret.Mask(st.CurrentKeyID))
	}
	w.app.halt()
	if n := w.app.rejected.Load(); n != 0 {
		t.Errorf("the gateway refused %d of the application's %d calls", n, w.app.calls.Load())
	}
	t.Logf("application calls through the gateway: %d, refused: %d; gateway startup %s", w.app.calls.Load(), w.app.rejected.Load(), g.Startup.Round(time.Millisecond))
	if w.app.calls.Load() < 10 {
		t.Errorf("the application made only %d calls", w.app.calls.Load())
	}
}

// TestGatewayCrashAtEveryFailpoint crashes the engine at each failpoint of
// an Express Gateway rotation (one consumer per failpoint on one real
// gateway), then starts a new engine over the same journal, reconciles
// and rotates to completion, while the application keeps calling the API
// through the gateway with the key the sink serves. Checked after the
// crash, after reconciling and at the end: the sink and the application
// hold keys the gateway accepts, every active key is known to the
// journal; at the end exactly one active key, the served one. Over the
// whole matrix the application must see 0 refused calls.
func TestGatewayCrashAtEveryFailpoint(t *testing.T) {
	t.Parallel()
	g := expressgw.Start(t, newGatewayBackend(t).URL)
	var calls, rejected atomic.Int64
	t.Cleanup(func() {
		t.Logf("crash matrix over %d failpoints: the application made %d calls through the gateway, %d refused (401/403)", len(rotator.Failpoints), calls.Load(), rejected.Load())
		if rejected.Load() != 0 {
			t.Errorf("the gateway refused %d of the application's calls during the crash matrix; want 0", rejected.Load())
		}
	})
	t.Run("matrix", func(t *testing.T) {
		for _, fp := range rotator.Failpoints {
			t.Run(fp, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				w := newGWWorld(h, g, "app-"+strings.ReplaceAll(fp, ".", "-"))
				defer func() {
					w.app.halt()
					calls.Add(w.app.calls.Load())
					rejected.Add(w.app.rejected.Load())
					w.app.rejectedKeys.Range(func(k, _ any) bool {
						t.Errorf("the gateway refused the application's key %v", k)
						return true
					})
				}()
				if strings.HasPrefix(fp, "rollback.") {
					w.app.fail.Store(true) // the application fails with the new key: the first attempt rolls back
				}
				crashed := func() (crashed any) {
					p := h.start(map[string]string{fp: "panic"})
					defer p.stop()
					defer func() { crashed = recover() }()
					out := h.rotate(p, gwPolicy)
					t.Logf("the rotation ended without reaching the failpoint: %s at %s (%v)", out.Result, out.Step, out.Err)
					return nil
				}()
				if crashed == nil {
					t.Fatalf("failpoint %s was never reached", fp)
				}
				if crashed != "failpoint "+fp {
					t.Fatalf("the engine panicked with %v, not at the failpoint", crashed)
				}
				w.app.fail.Store(false)
				w.check("after the crash")

				p := h.start(nil)
				if err := p.e.Reconcile(h.ctx); err != nil {
					t.Fatal(err)
				}
				st := h.state(p, gwPolicy)
				if st.Active != nil && !st.Active.Committed() {
					t.Fatalf("after reconciling, a rotation is still half-way before commit: step %s", st.Active.Step)
				}
				w.check("after reconciling")
				w.knownKeys("after reconciling", st)

				out := h.rotate(p, gwPolicy)
				if out.Result != "done" {
					t.Fatalf("rotation after recovery: %s at %s (%v)\nevents: %v", out.Result, out.Step, out.Err, stepsOf(h.eventLog()))
				}
				w.end(p)
			})
		}
	})
}
