package http

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.uber.org/goleak"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const canary = "CANARY-http-probe-51c9a7e3d8"

func decode(t *testing.T, dir, src string) (probes.Probe, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "p", Kind: "http", BaseDir: dir, DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return New(env, f.Body)
}

func mustProbe(t *testing.T, src string) probes.Probe {
	t.Helper()
	p, diags := decode(t, t.TempDir(), src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

var newKey = plugin.Key{ID: "key-17", Value: secret.Fields{"token": secret.New(canary)}}

func noCanary(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Fatalf("error leaks the key: %v", err)
	}
}

// recorder is a handler that remembers what it was sent.
type recorder struct {
	mu      sync.Mutex
	auth    string
	body    string
	method  string
	hits    int
	handler func(w http.ResponseWriter, r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.auth, rec.body, rec.method = r.Header.Get("Authorization"), string(b), r.Method
	rec.hits++
	rec.mu.Unlock()
	rec.handler(w, r)
}

func server(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{handler: h}
	ts := httptest.NewServer(rec)
	t.Cleanup(ts.Close)
	return ts, rec
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	})
	ctx := context.Background()
	if err := mustProbe(t, `url = "`+ts.URL+`/200"`).Check(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	err := mustProbe(t, `url = "`+ts.URL+`/503"`).Check(ctx, newKey)
	if err == nil || !strings.Contains(err.Error(), "GET "+ts.URL+"/503: status 503, expected 200") {
		t.Fatalf("err = %v", err)
	}
	if err := mustProbe(t, "url = \""+ts.URL+"/204\"\nexpect_status = [200, 204]").Check(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := mustProbe(t, "url = \""+ts.URL+"/401\"\nexpect_status = 401").Check(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"401", "403"} {
		err := mustProbe(t, `url = "`+ts.URL+`/`+code+`"`).Check(ctx, newKey)
		if !errors.Is(err, ErrNotAccepted) || !strings.Contains(err.Error(), "status "+code) || !strings.Contains(err.Error(), "401 and 403 alike") {
			t.Errorf("status %s: %v; want the credential reported as not accepted", code, err)
		}
	}
	if err := mustProbe(t, `url = "`+ts.URL+`/404"`).Check(ctx, newKey); errors.Is(err, ErrNotAccepted) {
		t.Errorf("status 404 reported as a refused credential: %v", err)
	}
}

func TestKeyInHeaderAndBody(t *testing.T) {
	t.Parallel()
	ts, rec := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+canary {
			// A careless server echoing the credential it refused.
			http.Error(w, "invalid token "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"ok": true}`)
	})
	p := mustProbe(t, `
url     = "`+ts.URL+`/v1/whoami"
method  = "post"
headers = { Authorization = "Bearer {{ .Key.token }}", X-Key-Id = "{{ .KeyID }}" }
body    = "{\"token\": \"{{ .Key.token }}\"}"
expect_body = "\"ok\": true"
`)
	if err := p.Check(context.Background(), newKey); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	if rec.auth != "Bearer "+canary || rec.body != `{"token": "`+canary+`"}` || rec.method != "POST" {
		t.Fatalf("server saw %q %q %q", rec.method, rec.auth, rec.body)
	}
	rec.mu.Unlock()

	wrong := plugin.Key{ID: "key-18", Value: secret.Fields{"token": secret.New("wrong-" + canary)}}
	err := p.Check(context.Background(), wrong)
	if err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Fatalf("err = %v", err)
	}
	noCanary(t, err)

	err = p.Check(context.Background(), plugin.Key{ID: "key-19"})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("key without value: %v", err)
	}
}

func TestURLIsShownWithoutCredentials(t *testing.T) {
	t.Parallel()
	ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	u := strings.Replace(ts.URL, "http://", "http://admin:"+canary+"@", 1) + "/health?api_key=" + canary + "#frag"
	err := mustProbe(t, `url = "`+u+`"`).Check(context.Background(), newKey)
	if err == nil || !strings.Contains(err.Error(), ts.URL+"/health: status 500") {
		t.Fatalf("err = %v", err)
	}
	noCanary(t, err)

	// Transport errors too (nothing listens there any more).
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	err = mustProbe(t, `url = "`+closed.URL+`/x?token=`+canary+`"`).Check(context.Background(), newKey)
	if err == nil || !strings.Contains(err.Error(), closed.URL+"/x:") {
		t.Fatalf("err = %v", err)
	}
	noCanary(t, err)
}

func TestExpectBody(t *testing.T) {
	t.Parallel()
	ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write([]byte(strings.Repeat("x", MaxBody)))
			w.Write([]byte("status: ok"))
		default:
			fmt.Fprint(w, "status: degraded; key "+canary)
		}
	})
	ctx := context.Background()
	err := mustProbe(t, "url = \""+ts.URL+"/\"\nexpect_body = \"status: ok\"").Check(ctx, newKey)
	if err == nil || !strings.Contains(err.Error(), "does not contain") {
		t.Fatalf("err = %v", err)
	}
	noCanary(t, err)
	if err := mustProbe(t, "url = \""+ts.URL+"/\"\nexpect_body_regex = \"status: (ok|degraded)\"").Check(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	err = mustProbe(t, "url = \""+ts.URL+"/\"\nexpect_body_regex = \"^status: ok$\"").Check(ctx, newKey)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v", err)
	}
	noCanary(t, err)
	if err := mustProbe(t, "url = \""+ts.URL+"/big\"\nexpect_body = \"status: ok\"").Check(ctx, newKey); err == nil {
		t.Fatal("text past the first 64 KiB matched")
	}
}

func writeCA(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSIsAlwaysVerified(t *testing.T) {
	t.Parallel()
	rec := &recorder{handler: func(w http.ResponseWriter, r *http.Request) {}}
	ts := httptest.NewTLSServer(rec)
	defer ts.Close()
	ctx := context.Background()

	p := mustProbe(t, "url = \""+ts.URL+"/healthz\"\nca_file = \""+writeCA(t, ts)+"\"")
	if err := p.Check(ctx, newKey); err != nil {
		t.Fatalf("with the CA: %v", err)
	}

	p = mustProbe(t, "url = \""+ts.URL+"/healthz\"\nheaders = { Authorization = \"Bearer {{ .Key.token }}\" }")
	rec.mu.Lock()
	rec.auth = ""
	rec.mu.Unlock()
	err := p.Check(ctx, newKey)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
	noCanary(t, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.auth != "" {
		t.Fatal("the key was sent to an unverified server")
	}

	// There is no way to turn verification off.
	if _, diags := decode(t, t.TempDir(), "url = \""+ts.URL+"\"\ninsecure_skip_verify = true"); !diags.HasErrors() {
		t.Fatal("insecure_skip_verify accepted")
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	other, otherRec := server(t, func(w http.ResponseWriter, r *http.Request) {})
	ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		}
	})
	ctx := context.Background()
	err := mustProbe(t, `url = "`+ts.URL+`/moved"`).Check(ctx, newKey)
	if err == nil || !strings.Contains(err.Error(), "status 302") {
		t.Fatalf("redirect followed by default: %v", err)
	}
	if err := mustProbe(t, "url = \""+ts.URL+"/moved\"\nfollow_redirects = true").Check(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	err = mustProbe(t, `
url              = "`+ts.URL+`/away"
method           = "POST"
headers          = { X-Api-Key = "{{ .Key.token }}" }
body             = "{{ .Key.token }}"
follow_redirects = true
`).Check(ctx, newKey)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "another origin") {
		t.Fatalf("cross-origin redirect: %v", err)
	}
	noCanary(t, err)
	otherRec.mu.Lock()
	defer otherRec.mu.Unlock()
	if otherRec.hits != 0 {
		t.Fatal("the key was sent to another origin")
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	err := mustProbe(t, "url = \""+ts.URL+"/slow\"\nrequest_timeout = \"100ms\"").Check(context.Background(), newKey)
	if err == nil || plugin.IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := mustProbe(t, `url = "`+ts.URL+`/slow"`).Check(ctx, newKey); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

func TestDefaultTarget(t *testing.T) {
	t.Parallel()
	p := mustProbe(t, `url = "https://example.internal/healthz"`)
	if p.(probes.Targeter).DefaultTarget() != probes.TargetDependent {
		t.Fatal("default target")
	}
}

func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, summary string
		line         int
	}{
		{`url = "ftp://example.internal/x"`, "Invalid url", 1},
		{`url = "/healthz"`, "Invalid url", 1},
		{"url = \"https://x\"\nmethod = \"GE T\"", "Invalid method", 2},
		{"url = \"https://x\"\nheaders = { \"Bad Name\" = \"x\" }", "Invalid header name", 2},
		{"url = \"https://x\"\nheaders = { A = \"{{ .Key.token \" }", "Invalid header template", 2},
		{"url = \"https://x\"\nbody = \"{{ end }}\"", "Invalid body template", 2},
		{"url = \"https://x\"\nexpect_status = 700", "Invalid expect_status", 2},
		{"url = \"https://x\"\nexpect_status = [200, \"ok\"]", "Invalid expect_status", 2},
		{"url = \"https://x\"\nexpect_status = []", "Invalid expect_status", 2},
		{"url = \"https://x\"\nexpect_status = 200.5", "Invalid expect_status", 2},
		{"url = \"https://x\"\nexpect_body = \"a\"\nexpect_body_regex = \"b\"", "Conflicting options", 3},
		{"url = \"https://x\"\nexpect_body_regex = \"(\"", "Invalid expect_body_regex", 2},
		{"url = \"https://x\"\nrequest_timeout = \"-1s\"", "Invalid request_timeout", 2},
		{"url = \"https://x\"\ntimeout = \"1m\"", "Unsupported argument", 2},
	}
	for _, c := range cases {
		p, diags := decode(t, t.TempDir(), c.src)
		if !diags.HasErrors() || p != nil {
			t.Errorf("%q: want an error, got %v", c.src, diags)
			continue
		}
		if d := diags[0]; d.Summary != c.summary || d.Subject == nil || d.Subject.Start.Line != c.line {
			t.Errorf("%q: %q at %v, want %q at line %d", c.src, d.Summary, d.Subject, c.summary, c.line)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notpem.pem"), []byte("hello"), 0o600)
	if _, diags := decode(t, dir, "url = \"https://x\"\nca_file = \"notpem.pem\""); !diags.HasErrors() || diags[0].Summary != "Invalid ca_file" {
		t.Errorf("not PEM: %v", diags)
	}
	// A CA file absent when the policy loads is read at each check.
	p, diags := decode(t, dir, "url = \"https://127.0.0.1:1/\"\nca_file = \"later.pem\"")
	if len(diags) != 0 {
		t.Fatalf("missing ca_file at load: %v", diags)
	}
	if err := p.Check(context.Background(), newKey); err == nil || !strings.Contains(err.Error(), "reading ca_file") {
		t.Errorf("missing ca_file at check: %v", err)
	}
}
