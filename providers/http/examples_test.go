package http

import (
	"context"
	"encoding/json"
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

// The SaaS and gateway examples cannot run against the real services here,
// so each one's provider block is exercised against a small stand-in that
// answers in the shape the vendor documents; the Express Gateway and Kong
// examples run against real components in e2e/.

// exampleProvider decodes the http provider block of examples/NAME, with
// base_url and file paths replaced.
func exampleProvider(t *testing.T, name string, repl map[string]string) providers.Provider {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name, "rekey.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for from, to := range repl {
		if !strings.Contains(src, from) {
			t.Fatalf("examples/%s no longer contains %q", name, from)
		}
		src = strings.ReplaceAll(src, from, to)
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), name+".hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, pb := range f.Body.(*hclsyntax.Body).Blocks {
		for _, b := range pb.Body.Blocks {
			if b.Type == "provider" && b.Labels[0] == Kind {
				env := &plugin.Env{Policy: pb.Labels[0], Kind: Kind, BaseDir: filepath.Join("..", "..", "examples", name), DefRange: b.DefRange()}
				p, diags := New(env, b.Body)
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				return p
			}
		}
	}
	t.Fatalf("examples/%s has no http provider", name)
	return nil
}

type vendor struct {
	mu   sync.Mutex
	keys []map[string]any
	n    int
	auth func(*http.Request) bool
}

func (v *vendor) serve(t *testing.T, h func(v *vendor, w http.ResponseWriter, r *http.Request)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if !v.auth(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h(v, w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (v *vendor) find(id string) int {
	for i, k := range v.keys {
		if k["id"] == id {
			return i
		}
	}
	return -1
}

func reply(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }

func TestExampleOpenAI(t *testing.T) {
	const admin = "sk-admin-test-0000"
	t.Setenv("OPENAI_ADMIN_KEY", admin)
	v := &vendor{auth: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+admin }}
	const project = "/v1/organization/projects/proj_orders"
	url := v.serve(t, func(v *vendor, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == project+"/service_accounts/svc_acct_orders/api_keys":
			var body struct{ Name string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			v.n++
			k := map[string]any{"object": "organization.project.api_key", "id": fmt.Sprintf("key_%d", v.n), "name": body.Name, "created_at": 1767225600 + v.n,
				"redacted_value": "sk-...xyz", "owner": map[string]any{"type": "service_account", "service_account": map[string]any{"id": "svc_acct_orders"}}}
			v.keys = append(v.keys, k)
			reply(w, map[string]any{"object": "organization.project.service_account.api_key", "value": fmt.Sprintf("sk-proj-secret-%d", v.n), "name": body.Name, "created_at": k["created_at"], "id": k["id"]})
		case r.Method == http.MethodGet && r.URL.Path == project+"/api_keys":
			start := 0
			if after := r.URL.Query().Get("after"); after != "" {
				start = v.find(after) + 1
			}
			end := min(start+2, len(v.keys))
			page := v.keys[start:end]
			last := ""
			if len(page) > 0 {
				last = page[len(page)-1]["id"].(string)
			}
			reply(w, map[string]any{"object": "list", "data": page, "last_id": last, "has_more": end < len(v.keys)})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, project+"/api_keys/"):
			id := strings.TrimPrefix(r.URL.Path, project+"/api_keys/")
			i := v.find(id)
			if i < 0 {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			v.keys = append(v.keys[:i], v.keys[i+1:]...)
			reply(w, map[string]any{"object": "organization.project.api_key.deleted", "id": id, "deleted": true})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	p := exampleProvider(t, "http-openai", map[string]string{`base_url = "https://api.openai.com"`: fmt.Sprintf("base_url = %q", url)})
	exerciseCreateListDelete(t, p, "api_key", 5)
}

func TestExampleTyk(t *testing.T) {
	const secretVal = "tyk-gateway-secret-0000"
	tok := filepath.Join(t.TempDir(), "tyk-secret")
	if err := os.WriteFile(tok, []byte(secretVal), 0o600); err != nil {
		t.Fatal(err)
	}
	v := &vendor{auth: func(r *http.Request) bool { return r.Header.Get("X-Tyk-Authorization") == secretVal }}
	url := v.serve(t, func(v *vendor, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/tyk/keys/create":
			var body struct {
				MetaData map[string]string `json:"meta_data"`
				Expires  *int64            `json:"expires"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.MetaData["rekey_rotation_id"] == "" || body.Expires == nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			v.n++
			hash := fmt.Sprintf("%08x", v.n)
			v.keys = append(v.keys, map[string]any{"id": hash, "expires": *body.Expires})
			reply(w, map[string]any{"key": "acme" + strconv.Itoa(v.n) + "deadbeefcafe", "status": "ok", "action": "added", "key_hash": hash})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/tyk/keys/") && r.URL.Query().Get("hashed") == "true":
			i := v.find(strings.TrimPrefix(r.URL.Path, "/tyk/keys/"))
			if i < 0 {
				w.WriteHeader(http.StatusNotFound)
				reply(w, map[string]any{"status": "error", "message": "Key not found"})
				return
			}
			v.keys = append(v.keys[:i], v.keys[i+1:]...)
			reply(w, map[string]any{"status": "ok", "action": "deleted"})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	p := exampleProvider(t, "http-tyk", map[string]string{
		`base_url = "https://tyk-gateway.internal:8080"`:   fmt.Sprintf("base_url = %q", url),
		`    ca_file  = "/etc/ssl/internal/ca.pem"` + "\n": "",
		"/etc/rekey/tyk-secret":                            tok,
	})
	ctx := context.Background()
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("the Tyk example does not take key_ttl")
	}
	k, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "orders-tyk-key", KeyTTL: 45 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "00000001" || !strings.HasSuffix(k.Value["api_key"].Reveal(), "deadbeefcafe") {
		t.Errorf("key %s: the id must be the hash, the value the key", k.ID)
	}
	if exp := time.Unix(v.keys[0]["expires"].(int64), 0); exp.Sub(time.Now().Add(45*24*time.Hour)).Abs() > time.Minute {
		t.Errorf("Tyk was asked to expire the key at %s, want 45 days from now", exp)
	}
	k0, err := p.Create(ctx, plugin.Rotation{ID: "rot-0", Policy: "orders-tyk-key"})
	if err != nil || v.keys[1]["expires"].(int64) != 0 {
		t.Fatalf("without key_ttl Tyk was asked for expires %v, want 0 (never), %v", v.keys[1]["expires"], err)
	}
	if err := p.Delete(ctx, k0.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Delete(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.keys) != 0 {
		t.Errorf("%d keys left", len(v.keys))
	}
}

func TestExampleAnthropic(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("the example's create_command is a shell script")
	}
	const admin = "sk-ant-admin01-test"
	tok := filepath.Join(t.TempDir(), "admin-key")
	if err := os.WriteFile(tok, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := t.TempDir()
	v := &vendor{auth: func(r *http.Request) bool {
		return r.Header.Get("X-Api-Key") == admin && r.Header.Get("Anthropic-Version") == "2023-06-01"
	}}
	for i := range 3 {
		id := fmt.Sprintf("apikey_0%d", i)
		v.keys = append(v.keys, map[string]any{"id": id, "type": "api_key", "name": "orders-pool", "status": "active", "created_at": "2026-11-30T10:00:00Z", "workspace_id": "wrkspc_orders"})
		if err := os.WriteFile(filepath.Join(pool, id+".key"), []byte("sk-ant-api03-pool-"+id), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	url := v.serve(t, func(v *vendor, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/organizations/api_keys" && r.URL.Query().Get("workspace_id") == "wrkspc_orders":
			start := 0
			if after := r.URL.Query().Get("after_id"); after != "" {
				start = v.find(after) + 1
			}
			end := min(start+2, len(v.keys))
			page := v.keys[start:end]
			last := ""
			if len(page) > 0 {
				last = page[len(page)-1]["id"].(string)
			}
			reply(w, map[string]any{"data": page, "has_more": end < len(v.keys), "first_id": nil, "last_id": last})
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/organizations/api_keys/"):
			i := v.find(strings.TrimPrefix(r.URL.Path, "/v1/organizations/api_keys/"))
			var body struct{ Status string }
			if i < 0 || json.NewDecoder(r.Body).Decode(&body) != nil {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			v.keys[i]["status"] = body.Status
			reply(w, v.keys[i])
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	p := exampleProvider(t, "http-anthropic", map[string]string{
		`base_url = "https://api.anthropic.com"`: fmt.Sprintf("base_url = %q", url),
		"/etc/rekey/anthropic-admin-key":         tok,
		"/var/lib/rekey/anthropic-pool":          pool,
	})
	ctx := context.Background()
	k, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "orders-anthropic-key"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.ID, "apikey_0") || k.Value["api_key"].Reveal() != "sk-ant-api03-pool-"+k.ID {
		t.Fatalf("pooled key %s", k.ID)
	}
	d := p.(providers.Deactivator)
	if err := d.Deactivate(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	status := func() map[string]plugin.KeyStatus {
		keys, err := p.(providers.Lister).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]plugin.KeyStatus{}
		for _, k := range keys {
			m[k.ID] = k.Status
		}
		return m
	}
	if s := status(); len(s) != 3 || s[k.ID] != plugin.KeyInactive {
		t.Errorf("after deactivate: %v", s)
	}
	if err := d.Activate(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if s := status(); len(s) != 2 {
		t.Errorf("an archived key is still listed: %v", s)
	}
	log, _ := os.ReadFile(filepath.Join(pool, "taken", "log"))
	if !strings.Contains(string(log), k.ID+" rotation=rot-1") {
		t.Errorf("the pool log does not record the hand-out: %q", log)
	}
}

// exerciseCreateListDelete creates n keys, lists them back with their
// rotation ids (over pages), and deletes them.
func exerciseCreateListDelete(t *testing.T, p providers.Provider, field string, n int) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		k, err := p.Create(ctx, plugin.Rotation{ID: fmt.Sprintf("rot-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if k.Value[field].Reveal() == "" {
			t.Fatalf("key %s has no %s", k.ID, field)
		}
		ids = append(ids, k.ID)
	}
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != n {
		t.Fatalf("listed %d keys, want %d", len(keys), n)
	}
	for i, k := range keys {
		if k.ID != ids[i] || k.RotationID != fmt.Sprintf("rot-%d", i) || k.CreatedAt.IsZero() {
			t.Errorf("key %d: %+v", i, k)
		}
	}
	for _, id := range ids {
		if err := p.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if keys, _ := p.(providers.Lister).List(ctx); len(keys) != 0 {
		t.Errorf("%d keys left", len(keys))
	}
}
