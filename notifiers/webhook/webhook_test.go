package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.uber.org/goleak"

	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/notifiers/dispatch"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const canarySigningKey = "CANARY-SIGNING-KEY-5f2b9c"

// decode builds a webhook notifier from HCL, as the loader would.
func decode(t *testing.T, dir, src string) (notifiers.Notifier, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	env := &plugin.Env{Policy: "payments", Kind: "webhook", BaseDir: dir, DefRange: hcl.Range{Filename: "policy.hcl"}}
	return New(env, f.Body)
}

func mustDecode(t *testing.T, dir, src string) notifiers.Notifier {
	t.Helper()
	n, diags := decode(t, dir, src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return n
}

func writeKey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "signing.key")
	if err := os.WriteFile(path, []byte(canarySigningKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// receiver is a real HTTP server that verifies signatures like an
// operator's receiver would.
type receiver struct {
	t       *testing.T
	key     []byte
	failN   int32 // answer 500 to the first failN requests
	status  int   // answer this after the failures (default 204)
	calls   atomic.Int32
	mu      sync.Mutex
	got     []notifiers.Message
	headers []http.Header
	ok      chan notifiers.Message
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if rc.key != nil {
		if !hmac.Equal([]byte(r.Header.Get(HeaderSignature)), []byte(Signature(rc.key, body))) {
			rc.t.Errorf("bad signature %q", r.Header.Get(HeaderSignature))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	var m notifiers.Message
	if err := json.Unmarshal(body, &m); err != nil {
		rc.t.Errorf("body is not a message: %v", err)
	}
	rc.mu.Lock()
	rc.got = append(rc.got, m)
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.mu.Unlock()
	if n <= rc.failN {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	status := rc.status
	if status == 0 {
		status = http.StatusNoContent
	}
	w.WriteHeader(status)
	if status < 300 && rc.ok != nil {
		rc.ok <- m
	}
}

func failedEvent() rotator.Event {
	return rotator.Event{Policy: "payments", RotationID: "rot-42", Generation: 4, Step: rotator.StepTest,
		Result: rotator.ResultFailed, Error: "probe aws_sts: InvalidClientTokenId", NewKeyID: "************XY12"}
}

func TestDeliveredOnThirdAttemptWithValidSignature(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeKey(t, dir)
	rc := &receiver{t: t, key: []byte(canarySigningKey), failN: 2, ok: make(chan notifiers.Message, 1)}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := mustDecode(t, dir, `
url              = "`+srv.URL+`/hooks/rekey"
signing_key_file = "signing.key"
headers          = { X-Team = "platform" }
timeout          = "5s"
`)
	var failures []error
	d := dispatch.New([]dispatch.Route{{Policy: "payments", Kind: "webhook", On: notifiers.DefaultFilter(), Notifier: n}},
		dispatch.Options{Hostname: "host-1", BaseDelay: 1, MaxDelay: 1,
			OnFailure: func(_ string, _ notifiers.Message, err error) { failures = append(failures, err) }})
	d.Start(context.Background())
	d.Observe(context.Background(), failedEvent())
	m := <-rc.ok
	d.Close()

	if len(failures) != 0 {
		t.Errorf("OnFailure: %v", failures)
	}
	if got := rc.calls.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
	if m.Event != "failure" || m.Hostname != "host-1" || m.Policy != "payments" || m.RotationID != "rot-42" ||
		m.Step != "test" || m.Result != "failed" || m.Error == "" || m.NewKeyID != "************XY12" {
		t.Errorf("delivered %+v", m)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, h := range rc.headers {
		if h.Get(HeaderDelivery) != m.ID || rc.got[i].ID != m.ID {
			t.Errorf("attempt %d has delivery id %q, want the same id %q on every retry", i+1, h.Get(HeaderDelivery), m.ID)
		}
		if h.Get(HeaderEvent) != "failure" || h.Get("X-Team") != "platform" || h.Get("Content-Type") != "application/json" {
			t.Errorf("attempt %d headers %v", i+1, h)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, canarySigningKey) {
					t.Errorf("header %s carries the signing key", k)
				}
			}
		}
	}
}

func TestHungServerDoesNotBlockObserve(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	n := mustDecode(t, t.TempDir(), `url = "`+srv.URL+`"`)
	var drops atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	d := dispatch.New([]dispatch.Route{{Kind: "webhook", On: notifiers.DefaultFilter(), Notifier: n}},
		dispatch.Options{QueueSize: 1, OnDrop: func(kind string) {
			if kind == "webhook" {
				drops.Add(1)
			}
		}})
	d.Start(ctx)
	d.Observe(context.Background(), failedEvent())
	<-arrived // the worker is now stuck in the hung request
	for range 5 {
		d.Observe(context.Background(), failedEvent()) // must return at once
	}
	if got := drops.Load(); got != 4 {
		t.Errorf("%d drops, want 4 (one message queued, the rest dropped)", got)
	}
	cancel() // shutdown: abandon the hung delivery
	d.Close()
}

func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rc := &receiver{t: t, ok: make(chan notifiers.Message, 1)}
	srv := httptest.NewTLSServer(rc)
	defer srv.Close()
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	m := dispatch.NewMessage("failure", "h", failedEvent())

	trusting := mustDecode(t, dir, `
url     = "`+srv.URL+`"
ca_file = "ca.pem"
`)
	if err := trusting.Notify(context.Background(), m); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	<-rc.ok

	plain := mustDecode(t, dir, `url = "`+srv.URL+`"`)
	err := plain.Notify(context.Background(), m)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("untrusted certificate: err = %v, want a permanent error mentioning ca_file", err)
	}
	if rc.calls.Load() != 1 {
		t.Errorf("the server was reached %d times; an unverified TLS connection must not send the request", rc.calls.Load())
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		wantErr   bool
		permanent bool
	}{
		{200, false, false},
		{202, false, false},
		{302, true, true},
		{400, true, true},
		{401, true, true},
		{408, true, false},
		{429, true, false},
		{500, true, false},
		{503, true, false},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.status == 302 {
				http.Redirect(w, r, "/elsewhere", tt.status)
				return
			}
			w.WriteHeader(tt.status)
		}))
		n := mustDecode(t, t.TempDir(), `url = "`+srv.URL+`/secret-path-token"`)
		err := n.Notify(context.Background(), dispatch.NewMessage("failure", "h", failedEvent()))
		srv.Close()
		if (err != nil) != tt.wantErr || plugin.IsPermanent(err) != tt.permanent {
			t.Errorf("status %d: err = %v (permanent %v), want error %v permanent %v", tt.status, err, plugin.IsPermanent(err), tt.wantErr, tt.permanent)
		}
		if err != nil && strings.Contains(err.Error(), "secret-path-token") {
			t.Errorf("status %d: error shows the URL path: %v", tt.status, err)
		}
	}
}

func TestSigningKeyFileProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	m := dispatch.NewMessage("failure", "h", failedEvent())

	loose := filepath.Join(dir, "loose.key")
	if err := os.WriteFile(loose, []byte(canarySigningKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file string
		want string
	}{
		"world-readable key": {loose, "chmod 0600 " + loose},
		"empty key":          {empty, "openssl rand"},
		"missing key":        {filepath.Join(dir, "absent.key"), "no such file"},
	} {
		n := mustDecode(t, dir, `
url              = "`+srv.URL+`"
signing_key_file = "`+tc.file+`"
`)
		err := n.Notify(context.Background(), m)
		if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a permanent error containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), canarySigningKey) {
			t.Errorf("%s: error contains the key", name)
		}
		if name == "world-readable key" && !errors.Is(err, harden.ErrInsecure) {
			t.Errorf("%s: err does not wrap harden.ErrInsecure", name)
		}
	}
}

func TestConfigDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
		warning         bool
	}{
		{"url is required", `timeout = "5s"`, `"url" is required`, false},
		{"relative url", `url = "hooks/rekey"`, "absolute https:// URL", false},
		{"other scheme", `url = "ftp://hooks.example.com/"`, "must use https://", false},
		{"credentials in url", `url = "https://user:pw@hooks.example.com/"`, "must not contain a user name or password", false},
		{"plain http elsewhere warns", `url = "http://hooks.example.com/"`, "Webhook without TLS", true},
		{"authorization header is a secret", `
url     = "https://hooks.example.com/"
headers = { Authorization = "Bearer abc" }`, "signing_key_file", false},
		{"api key header is a secret", `
url     = "https://hooks.example.com/"
headers = { X-Api-Key = "abc" }`, "looks like it carries a credential", false},
		{"reserved header", `
url     = "https://hooks.example.com/"
headers = { X-Rekey-Event = "x" }`, "set by rekey", false},
		{"bad timeout", `
url     = "https://hooks.example.com/"
timeout = "soon"`, "Invalid timeout", false},
		{"zero timeout", `
url     = "https://hooks.example.com/"
timeout = "0s"`, "must be positive", false},
		{"unknown attribute", `
url  = "https://hooks.example.com/"
tls_skip_verify = true`, "Unsupported argument", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, diags := decode(t, t.TempDir(), tt.src)
			if !strings.Contains(diags.Error(), tt.want) {
				t.Fatalf("diags = %v, want %q", diags, tt.want)
			}
			if tt.warning {
				if diags.HasErrors() || n == nil {
					t.Errorf("want only a warning, got %v", diags)
				}
				return
			}
			if !diags.HasErrors() || n != nil {
				t.Errorf("want an error and no notifier, got %v", diags)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename != "policy.hcl" {
					t.Errorf("diagnostic without a source range: %+v", d)
				}
			}
		})
	}
	if _, diags := decode(t, t.TempDir(), `url = "http://127.0.0.1:9/hook"`); len(diags) != 0 {
		t.Errorf("http to loopback: %v", diags)
	}
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	if _, ok := notifiers.Registry.Lookup("webhook"); !ok {
		t.Error("webhook kind not registered")
	}
}
