package http

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

const (
	canarySecret = "CANARY-http-provider-secret-4e1f0b7d"
	canaryToken  = "CANARY-http-provider-token-9a2c5e31"
)

func decode(t *testing.T, src string) (providers.Provider, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "orders", Kind: Kind, BaseDir: t.TempDir(), DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return New(env, f.Body)
}

func mustDecode(t *testing.T, src string) providers.Provider {
	t.Helper()
	p, diags := decode(t, src)
	if diags.HasErrors() {
		t.Fatalf("decoding: %s", diags)
	}
	return p
}

// keyAPI is a small key-management API with a ledger of every request:
// the in-process stand-in for the failures a real server cannot produce
// on demand (429 with Retry-After, 5xx, answers lacking fields, 401/403).
type keyAPI struct {
	mu     sync.Mutex
	keys   []*apiKey
	n      int
	ledger []string
	// fail maps "METHOD /path" to statuses answered in turn before the
	// request is served.
	fail map[string][]int
	// retryAfter is sent with 429 and 503.
	retryAfter string
	// omit drops a field from create answers.
	omit     string
	pageSize int
	token    string
}

type apiKey struct {
	ID        string   `json:"id"`
	Secret    string   `json:"secret"`
	Active    bool     `json:"active"`
	CreatedAt int64    `json:"created_at"`
	Tags      []string `json:"tags"`
	LastUsed  *string  `json:"last_used"`
	// ExpiresAt (seconds since 1970) is set by a create body's "ttl"
	// (seconds) or "expires_at" (seconds since 1970); ExpiresIn is the
	// seconds left, as answered.
	ExpiresAt *int64 `json:"expires_at"`
	ExpiresIn *int64 `json:"expires_in"`
}

func newKeyAPI(t *testing.T) (*keyAPI, *httptest.Server) {
	a := &keyAPI{fail: map[string][]int{}, pageSize: 2, token: canaryToken}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *keyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	route := r.Method + " " + r.URL.Path
	a.ledger = append(a.ledger, route)
	if q := a.fail[route]; len(q) > 0 {
		a.fail[route] = q[1:]
		if q[0] == 429 || q[0] == 503 {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(q[0])
		_, _ = fmt.Fprintf(w, `{"error": "refused", "echo": %q}`, canarySecret)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, `{"error": "bad token", "secret": %q}`, canarySecret)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/keys":
		var body struct {
			Tags      []string `json:"tags"`
			TTL       *int64   `json:"ttl"`
			ExpiresAt *int64   `json:"expires_at"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.TTL != nil && *body.TTL <= 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.n++
		k := &apiKey{ID: fmt.Sprintf("key-%03d", a.n), Secret: fmt.Sprintf("%s-%d", canarySecret, a.n), Active: true, CreatedAt: time.Now().Unix(), Tags: body.Tags}
		switch {
		case body.TTL != nil:
			e := k.CreatedAt + *body.TTL
			k.ExpiresAt = &e
		case body.ExpiresAt != nil:
			k.ExpiresAt = body.ExpiresAt
		}
		a.keys = append(a.keys, k)
		k.setExpiresIn()
		m := map[string]any{"id": k.ID, "secret": k.Secret, "created_at": k.CreatedAt, "tags": k.Tags, "expires_at": k.ExpiresAt, "expires_in": k.ExpiresIn}
		delete(m, a.omit)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(m)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/keys":
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		end := min(off+a.pageSize, len(a.keys))
		for _, k := range a.keys {
			k.setExpiresIn()
		}
		page := map[string]any{"data": a.keys[off:end], "next": nil}
		if end < len(a.keys) {
			page["next"] = "/v1/keys?offset=" + strconv.Itoa(end)
		}
		_ = json.NewEncoder(w).Encode(page)
	case len(parts) >= 3 && parts[0] == "v1" && parts[1] == "keys":
		i := a.find(parts[2])
		if i < 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		switch {
		case r.Method == http.MethodDelete && len(parts) == 3:
			a.keys = append(a.keys[:i], a.keys[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "disable":
			a.keys[i].Active = false
			_, _ = w.Write([]byte(`{}`))
		case r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "enable":
			a.keys[i].Active = true
			_, _ = w.Write([]byte(`{}`))
		case r.Method == http.MethodGet && len(parts) == 4 && parts[3] == "usage":
			_ = json.NewEncoder(w).Encode(map[string]any{"last_used": a.keys[i].LastUsed})
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (k *apiKey) setExpiresIn() {
	k.ExpiresIn = nil
	if k.ExpiresAt != nil {
		left := *k.ExpiresAt - time.Now().Unix()
		k.ExpiresIn = &left
	}
}

func (a *keyAPI) find(id string) int {
	for i, k := range a.keys {
		if k.ID == id {
			return i
		}
	}
	return -1
}

func (a *keyAPI) count(route string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, l := range a.ledger {
		if l == route {
			n++
		}
	}
	return n
}

func (a *keyAPI) failNext(route string, codes ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[route] = codes
}

// config returns a provider block for the key API at url with the token
// in a file.
func (a *keyAPI) config(t testing.TB, url, extra string) string {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(a.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
base_url = %q
retries  = 3
max_keys = 3
headers  = { Authorization = "Bearer {{ .Token }}" }
auth { token_file = %q }
create {
  path = "/v1/keys"
  body = "{\"tags\": [\"rekey\", \"rekey-rotation:{{ .RotationID }}\", {{ json .Policy }}]}"
  id         = "id"
  fields     = { api_key = "secret", key_id = "id" }
  created_at = "created_at"
}
list {
  path  = "/v1/keys"
  items = "data"
  id    = "id"
  status = "active"
  created_at  = "created_at"
  rotation_id = "tags"
  rotation_id_prefix = "rekey-rotation:"
  next = "next"
}
delete     { path = "/v1/keys/{{ .KeyID }}" }
deactivate {
  method = "POST"
  path = "/v1/keys/{{ .KeyID }}/disable"
}
activate {
  method = "POST"
  path = "/v1/keys/{{ .KeyID }}/enable"
}
last_used {
  path = "/v1/keys/{{ .KeyID }}/usage"
  last_used = "last_used"
}
usage_delay = "1m"
%s
`, url, tok, extra)
}

func fastRetries(p providers.Provider) {
	switch v := p.(type) {
	case interface{ Spec() Spec }:
		v.Spec().Client.backoff = time.Millisecond
	}
}

func TestLifecycle(t *testing.T) {
	a, srv := newKeyAPI(t)
	p := mustDecode(t, a.config(t, srv.URL, ""))
	fastRetries(p)
	ctx := context.Background()
	l, okL := providers.AsLister(p)
	d, okD := providers.AsDeactivator(p)
	u, okU := providers.AsUsageReporter(p)
	c, okC := providers.AsCapacity(p)
	if !okL || !okD || !okU || !okC {
		t.Fatalf("abilities: list %v, deactivate %v, last_used %v, capacity %v; want all", okL, okD, okU, okC)
	}
	if c.MaxKeys() != 3 || u.UsageReportingDelay() != time.Minute {
		t.Errorf("MaxKeys %d, UsageReportingDelay %s", c.MaxKeys(), u.UsageReportingDelay())
	}
	var ids []string
	for i := range 5 {
		k, err := p.Create(ctx, plugin.Rotation{ID: fmt.Sprintf("rot-%d", i), Policy: "orders", Generation: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		if k.Value["api_key"].Reveal() != fmt.Sprintf("%s-%d", canarySecret, i+1) || k.Value["key_id"].Reveal() != k.ID || k.CreatedAt.IsZero() {
			t.Fatalf("created key %s: fields %v, created %s", k.ID, k.Value.Names(), k.CreatedAt)
		}
		ids = append(ids, k.ID)
	}
	keys, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Fatalf("listed %d keys over pages of 2, want 5", len(keys))
	}
	for i, k := range keys {
		if k.ID != ids[i] || k.RotationID != fmt.Sprintf("rot-%d", i) || k.Status != plugin.KeyActive || k.CreatedAt.IsZero() {
			t.Errorf("key %d: %+v", i, k)
		}
	}
	if n := a.count("GET /v1/keys"); n != 3 {
		t.Errorf("the list took %d requests, want 3 pages", n)
	}
	if err := d.Deactivate(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	keys, _ = l.List(ctx)
	if keys[0].Status != plugin.KeyInactive {
		t.Errorf("deactivated key lists as %s", keys[0].Status)
	}
	if err := d.Activate(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Activate(ctx, "key-999"); !errors.Is(err, plugin.ErrNotFound) {
		t.Errorf("activating a missing key: %v, want ErrNotFound", err)
	}
	if lu, err := u.LastUsed(ctx, ids[1]); err != nil || !lu.IsZero() {
		t.Errorf("LastUsed of a key never used: %s, %v", lu, err)
	}
	a.mu.Lock()
	when := "2026-01-02T03:04:05Z"
	a.keys[1].LastUsed = &when
	a.mu.Unlock()
	if lu, err := u.LastUsed(ctx, ids[1]); err != nil || lu.Format(time.RFC3339) != when {
		t.Errorf("LastUsed: %s, %v", lu, err)
	}
	for _, id := range ids {
		if err := p.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Delete(ctx, ids[0]); err != nil {
		t.Errorf("deleting a key already gone: %v", err)
	}
	if keys, _ := l.List(ctx); len(keys) != 0 {
		t.Errorf("%d keys left", len(keys))
	}
}

func TestRetries(t *testing.T) {
	a, srv := newKeyAPI(t)
	a.retryAfter = "0"
	p := mustDecode(t, a.config(t, srv.URL, ""))
	fastRetries(p)
	ctx := context.Background()
	a.failNext("POST /v1/keys", 429, 503)
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1"})
	if err != nil {
		t.Fatalf("create after 429 and 503: %v", err)
	}
	if n := a.count("POST /v1/keys"); n != 3 {
		t.Errorf("%d create requests, want 3", n)
	}
	a.failNext("POST /v1/keys", 500)
	_, err = p.Create(ctx, plugin.Rotation{ID: "r2"})
	if err == nil || plugin.IsPermanent(err) {
		t.Errorf("create answered 500: %v; want a retryable error", err)
	}
	if n := a.count("POST /v1/keys"); n != 4 {
		t.Errorf("a POST answered 500 was retried (%d requests): it may have made a key", n)
	}
	a.failNext("DELETE /v1/keys/"+k.ID, 502, 504, 500)
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Errorf("delete after three 5xx: %v", err)
	}
	a.failNext("GET /v1/keys", 503, 503, 503, 503, 503)
	_, err = p.(providers.Lister).List(ctx)
	if err == nil || plugin.IsPermanent(err) || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("list failing past the retries: %v", err)
	}
	checkClean(t, err)
}

func TestRetryAfter(t *testing.T) {
	h := http.Header{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "-1": 0, "9999": maxRetryAfter, "Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second, "soon": 0} {
		h.Set("Retry-After", v)
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

// checkClean asserts that an error carries neither the admin token nor a
// secret from a response body.
func checkClean(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, c := range []string{canarySecret, canaryToken} {
		if strings.Contains(err.Error(), c) {
			t.Errorf("the error leaks a canary: %v", err)
		}
	}
}

func TestRefusedCredential(t *testing.T) {
	for _, code := range []int{401, 403} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			a, srv := newKeyAPI(t)
			p := mustDecode(t, a.config(t, srv.URL, ""))
			a.failNext("POST /v1/keys", code)
			_, err := p.Create(context.Background(), plugin.Rotation{ID: "r1"})
			if err == nil || !plugin.IsPermanent(err) {
				t.Fatalf("create refused with %d: %v; want a permanent error", code, err)
			}
			for _, want := range []string{`policy "orders"`, srv.URL + "/v1/keys", "not accepted", "401 and 403", "token_file"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			checkClean(t, err)
		})
	}
	a, srv := newKeyAPI(t)
	p := mustDecode(t, a.config(t, srv.URL, ""))
	a.mu.Lock()
	a.token = "rotated-elsewhere"
	a.mu.Unlock()
	_, err := p.(providers.Lister).List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("an expired admin token: %v", err)
	}
	checkClean(t, err)
}

func TestUnreachable(t *testing.T) {
	a, srv := newKeyAPI(t)
	url := srv.URL
	p := mustDecode(t, a.config(t, url, ""))
	fastRetries(p)
	srv.Close()
	_, err := p.Create(context.Background(), plugin.Rotation{ID: "r1"})
	if err == nil || plugin.IsPermanent(err) {
		t.Fatalf("create against a closed port: %v; want a retryable error", err)
	}
	for _, want := range []string{`policy "orders"`, url + "/v1/keys", "cannot reach"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	checkClean(t, err)
}

func TestMissingConsumer(t *testing.T) {
	a, srv := newKeyAPI(t)
	p := mustDecode(t, a.config(t, srv.URL, ""))
	a.failNext("POST /v1/keys", 404)
	_, err := p.Create(context.Background(), plugin.Rotation{ID: "r1"})
	if !errors.Is(err, plugin.ErrNotFound) || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("create answered 404: %v", err)
	}
	checkClean(t, err)
}

// TestMissingFields: an answer without the secret field gets the key
// deleted at once; one without the id leaves a key that list finds by its
// rotation id.
// TestListWithoutItems: an answer without the configured list of keys is
// an error, never "no keys" (which would hide the key in use and orphans).
func TestListWithoutItems(t *testing.T) {
	a, srv := newKeyAPI(t)
	p := mustDecode(t, strings.Replace(a.config(t, srv.URL, ""), `items = "data"`, `items = "keys"`, 1))
	_, err := p.(providers.Lister).List(context.Background())
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), `no list of keys at "keys"`) {
		t.Errorf("a list answer without the items: %v", err)
	}
}

func TestMissingFields(t *testing.T) {
	a, srv := newKeyAPI(t)
	p := mustDecode(t, a.config(t, srv.URL, ""))
	ctx := context.Background()
	a.omit = "secret"
	_, err := p.Create(ctx, plugin.Rotation{ID: "r1"})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "api_key") || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("create without the secret: %v", err)
	}
	checkClean(t, err)
	if n := a.count("DELETE /v1/keys/key-001"); n != 1 {
		t.Errorf("the key without a secret was deleted %d times, want 1", n)
	}
	a.omit = "id"
	_, err = p.Create(ctx, plugin.Rotation{ID: "r2"})
	if err == nil || !strings.Contains(err.Error(), "rotation id") {
		t.Errorf("create without the id: %v", err)
	}
	checkClean(t, err)
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil || len(keys) != 1 || keys[0].RotationID != "r2" {
		t.Errorf("the key made without an id in the answer: %+v (%v); want it findable by rotation id r2", keys, err)
	}
}

func TestTLS(t *testing.T) {
	a := &keyAPI{fail: map[string][]int{}, pageSize: 10, token: canaryToken}
	srv := httptest.NewTLSServer(a)
	defer srv.Close()
	p := mustDecode(t, a.config(t, srv.URL, ""))
	fastRetries(p)
	_, err := p.Create(context.Background(), plugin.Rotation{ID: "r1"})
	if err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("a server with an unknown CA: %v; want a refusal that points at ca_file", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p = mustDecode(t, a.config(t, srv.URL, fmt.Sprintf("ca_file = %q", ca)))
	if _, err := p.Create(context.Background(), plugin.Rotation{ID: "r2"}); err != nil {
		t.Errorf("with ca_file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	const minimal = `
base_url = "https://keys.example"
create {
  path = "/keys"
  body = "{\"name\": \"rekey-{{ .RotationID }}\"}"
  id = "id"
  fields = { api_key = "key" }
}
delete { path = "/keys/{{ .KeyID }}" }
`
	cases := []struct {
		name, src, want, at string
	}{
		{"unknown variable", strings.Replace(minimal, `path = "/keys"`, `path = "/keys/{{ .Consumer }}"`, 1), "refers to .Consumer", "policy.hcl:4,20"},
		{"key id at create", strings.Replace(minimal, `path = "/keys"`, `path = "/keys/{{ .KeyID }}"`, 1), "refers to .KeyID", "policy.hcl:4,20"},
		{"token without auth", strings.Replace(minimal, `base_url = "https://keys.example"`, `base_url = "https://keys.example"
headers = { Authorization = "Bearer {{ .Token }}" }`, 1), "refers to .Token", "policy.hcl:3,40"},
		{"auth never sent", strings.Replace(minimal, `base_url = "https://keys.example"`, `base_url = "https://keys.example"
auth { token_env = "KEYS_TOKEN" }`, 1), "never sent", ""},
		{"plain http", strings.Replace(minimal, `https://keys.example`, `http://keys.example`, 1), "unencrypted", "policy.hcl:2,1"},
		{"bad jmespath", strings.Replace(minimal, `id = "id"`, `id = "data[?"`, 1), "does not compile", "policy.hcl:6,3"},
		{"max_keys without list", minimal + "max_keys = 2\n", "needs a list", ""},
		{"activate alone", minimal + "activate { path = \"/keys/{{ .KeyID }}/on\" }\n", "go together", ""},
		{"no create", "base_url = \"https://keys.example\"\ndelete { path = \"/k/{{ .KeyID }}\" }\n", "create { ... }", ""},
		{"id in delete", strings.Replace(minimal, `delete { path = "/keys/{{ .KeyID }}" }`, `delete {
  path = "/keys/{{ .KeyID }}"
  id = "id"
}`, 1), "Unexpected id", ""},
		{"rotation id never sent", strings.Replace(minimal, `rekey-{{ .RotationID }}`, `rekey`, 1) + "list {\n  path = \"/keys\"\n  id = \"id\"\n  rotation_id = \"name\"\n}\n", "never sends", ""},
		{"two auth sources", strings.Replace(minimal, `base_url = "https://keys.example"`, `base_url = "https://keys.example"
auth {
  token_env = "A"
  token_file = "/b"
}`, 1), "exactly one", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := decode(t, c.src)
			if !diags.HasErrors() {
				t.Fatalf("no error; want %q", c.want)
			}
			found := false
			for _, d := range diags {
				if d.Severity == hcl.DiagError && strings.Contains(d.Summary+" "+d.Detail, c.want) {
					found = true
					if c.at != "" && (d.Subject == nil || !strings.HasPrefix(d.Subject.String(), c.at)) {
						t.Errorf("error %q at %v, want %s", d.Summary, d.Subject, c.at)
					}
				}
			}
			if !found {
				t.Errorf("diagnostics %s lack %q", diags, c.want)
			}
		})
	}

	_, diags := decode(t, minimal+"list {\n  path = \"/keys\"\n  id = \"id\"\n  created_at = \"created\"\n}\n")
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].Summary, "only be found by creation time") {
		t.Errorf("a list without rotation_id: %s; want one warning about finding orphans by creation time", diags)
	}
	_, diags = decode(t, minimal)
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].Summary, "Orphans cannot be found") {
		t.Errorf("no list: %s; want one warning", diags)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 12, 4, 18, 6, 49, 0, time.UTC)
	for _, v := range []any{"2026-12-04T18:06:49Z", "Fri Dec 04 2026 18:06:49 GMT+0000 (Coordinated Universal Time)", float64(want.Unix()), float64(want.UnixMilli()), "Fri, 04 Dec 2026 18:06:49 GMT"} {
		got, err := parseTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%v) = %s, %v", v, got, err)
		}
	}
	if _, err := parseTime("yesterday"); err == nil {
		t.Error("parseTime(yesterday) succeeded")
	}
}

func TestEscape(t *testing.T) {
	if got := escapeAll("a b/c?d&e=f+g%h_.~-"); got != "a%20b%2Fc%3Fd%26e%3Df%2Bg%25h_.~-" {
		t.Errorf("escapeAll = %s", got)
	}
}

func TestOrphansAttribute(t *testing.T) {
	const base = `
base_url = "https://keys.example"
create {
  path = "/keys"
  id = "id"
  fields = { api_key = "key" }
}
delete { path = "/keys/{{ .KeyID }}" }
`
	listByTime := "list {\n  path = \"/keys\"\n  id = \"id\"\n  created_at = \"created\"\n}\n"
	_, diags := decode(t, base+listByTime+"orphans = \"created_at\"\n")
	if len(diags) != 0 {
		t.Errorf("orphans = created_at acknowledged: %s; want no diagnostics", diags)
	}
	_, diags = decode(t, base+"orphans = \"manual\"\n")
	if len(diags) != 0 {
		t.Errorf("orphans = manual without list: %s; want no diagnostics", diags)
	}
	_, diags = decode(t, base+listByTime+"orphans = \"rotation_id\"\n")
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "by the creation time") {
		t.Errorf("orphans = rotation_id without rotation_id: %s; want an error", diags)
	}
}

func TestCreateCommand(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	a, srv := newKeyAPI(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "create.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
printf '{"id": "ext-%s", "value": {"api_key": "%s-%s"}, "created_at": "2026-01-02T03:04:05Z"}' "$REKEY_ROTATION_ID" "$SECRET_PREFIX" "$REKEY_POLICY"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	src := a.config(t, srv.URL, "")
	start := strings.Index(src, "create {")
	end := strings.Index(src, "list {")
	src = src[:start] + fmt.Sprintf("create_command = [%q]\ncommand_env = { SECRET_PREFIX = %q }\n", script, "not-secret") + src[end:]
	p := mustDecode(t, src)
	k, err := p.Create(context.Background(), plugin.Rotation{ID: "r9", Policy: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "ext-r9" || k.Value["api_key"].Reveal() != "not-secret-orders" || k.CreatedAt.Year() != 2026 {
		t.Errorf("key from create_command: %s %v %s", k.ID, k.Value.Names(), k.CreatedAt)
	}
	if n := a.count("POST /v1/keys"); n != 0 {
		t.Errorf("the create request was sent %d times", n)
	}
}

// BenchmarkCreateDelete measures one create and one delete through the
// provider against a local key API (templates, TLS-less HTTP, JMESPath).
func BenchmarkCreateDelete(b *testing.B) {
	a := &keyAPI{fail: map[string][]int{}, pageSize: 100, token: canaryToken}
	srv := httptest.NewServer(a)
	defer srv.Close()
	p := mustDecodeB(b, a.config(b, srv.URL, ""))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k, err := p.Create(ctx, plugin.Rotation{ID: strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Delete(ctx, k.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList measures listing 250 keys over 3 pages.
func BenchmarkList(b *testing.B) {
	a := &keyAPI{fail: map[string][]int{}, pageSize: 100, token: canaryToken}
	srv := httptest.NewServer(a)
	defer srv.Close()
	for i := range 250 {
		a.keys = append(a.keys, &apiKey{ID: fmt.Sprintf("key-%03d", i), Active: true, CreatedAt: 1767225600, Tags: []string{"rekey-rotation:r" + strconv.Itoa(i)}})
	}
	p := mustDecodeB(b, a.config(b, srv.URL, ""))
	l := p.(providers.Lister)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		keys, err := l.List(ctx)
		if err != nil || len(keys) != 250 {
			b.Fatal(len(keys), err)
		}
	}
}

func mustDecodeB(b *testing.B, src string) providers.Provider {
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	env := &plugin.Env{Policy: "orders", Kind: Kind, BaseDir: b.TempDir(), DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	p, diags := New(env, f.Body)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return p
}
