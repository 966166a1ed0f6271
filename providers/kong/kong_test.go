package kong

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/testenv/kongemu"
)

const canaryToken = "CANARY-kong-admin-token-5d2e8b"

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
	if len(diags) > 0 {
		t.Errorf("warnings: %s", diags)
	}
	return p
}

func tokenFile(t *testing.T, token string) string {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noCanary(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, canaryToken) {
		if err != nil && s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error leaks a secret: %v", err)
		}
	}
}

// TestKongLifecycle: create with tags and ttl, list over several pages,
// rotation ids read back from tags, delete (twice), against the emulator.
func TestKongLifecycle(t *testing.T) {
	emu := kongemu.Start(t)
	emu.AddConsumer("", "orders-app")
	p := mustDecode(t, fmt.Sprintf(`
admin_url = %q
consumer  = "orders-app"
ttl       = "90d"
tags      = ["team:orders"]
`, emu.URL))
	ctx := context.Background()
	if _, ok := providers.AsDeactivator(p); ok {
		t.Error("the kong provider claims to deactivate keys; Kong cannot")
	}
	if _, ok := providers.AsUsageReporter(p); ok {
		t.Error("the kong provider claims to report last use; Kong cannot")
	}
	l, ok := providers.AsLister(p)
	if !ok {
		t.Fatal("the kong provider cannot list")
	}
	if got := p.Target(); got != "kong:"+strings.TrimPrefix(emu.URL, "http://")+":orders-app" {
		t.Errorf("Target() = %s", got)
	}
	var ids []string
	for i := range 105 {
		k, err := p.Create(ctx, plugin.Rotation{ID: fmt.Sprintf("rot-%03d", i), Policy: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		if k.Value[FieldKey].Reveal() == "" || k.CreatedAt.IsZero() {
			t.Fatalf("created key %s without a value or time", k.ID)
		}
		ids = append(ids, k.ID)
	}
	creds := emu.Credentials("", "orders-app")
	if len(creds) != 105 {
		t.Fatalf("the emulator holds %d credentials", len(creds))
	}
	c := creds[7]
	want := []string{"rekey", "rekey-rotation:rot-007", "rekey-policy:orders", "team:orders"}
	if strings.Join(c.Tags, " ") != strings.Join(want, " ") || c.TTL == nil || *c.TTL != 90*86400 {
		t.Errorf("credential tags %v, ttl %v; want %v and 90 days", c.Tags, c.TTL, want)
	}
	keys, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 105 {
		t.Fatalf("listed %d keys, want 105 over two pages", len(keys))
	}
	for i, k := range keys {
		if k.ID != ids[i] || k.RotationID != fmt.Sprintf("rot-%03d", i) || k.Status != plugin.KeyActive || k.CreatedAt.IsZero() {
			t.Fatalf("key %d: %+v", i, k)
		}
	}
	pages := 0
	for _, e := range emu.Ledger() {
		if e.Method == http.MethodGet && strings.Contains(e.Path, "/key-auth") {
			pages++
		}
	}
	if pages != 2 {
		t.Errorf("the list took %d requests, want 2 pages", pages)
	}
	for _, id := range ids {
		if err := p.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Delete(ctx, ids[0]); err != nil {
		t.Errorf("deleting a credential already gone: %v", err)
	}
	if n := len(emu.Credentials("", "orders-app")); n != 0 {
		t.Errorf("%d credentials left", n)
	}
}

func TestKongWorkspaceAndToken(t *testing.T) {
	emu := kongemu.Start(t)
	emu.AddWorkspace("payments")
	emu.AddConsumer("payments", "orders-app")
	emu.SetToken(canaryToken, "read-only-token-1234")
	ctx := context.Background()
	src := func(ws, token string) string {
		return fmt.Sprintf(`
admin_url = %q
workspace = %q
consumer  = "orders-app"
auth {
  token_file = %q
}
`, emu.URL, ws, tokenFile(t, token))
	}
	p := mustDecode(t, src("payments", canaryToken))
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Policy: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if got := emu.Credentials("payments", "orders-app"); len(got) != 1 || got[0].ID != k.ID {
		t.Fatalf("the credential is not in the workspace: %+v", got)
	}
	if got := emu.Credentials("", "orders-app"); len(got) != 0 {
		t.Errorf("the default workspace sees %d credentials", len(got))
	}

	// A consumer that does not exist (here: not in the default workspace).
	_, err = mustDecode(t, src("default", canaryToken)).Create(ctx, plugin.Rotation{ID: "r2"})
	if !errors.Is(err, plugin.ErrNotFound) || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), `policy "orders"`) || !strings.Contains(err.Error(), emu.URL+"/default/consumers/orders-app/key-auth") {
		t.Errorf("a missing consumer: %v", err)
	}
	noCanary(t, err, k.Value[FieldKey].Reveal())

	for _, tc := range []struct {
		token string
		code  string
	}{{"expired-token-0000", "status 401"}, {"read-only-token-1234", "status 403"}} {
		_, err := mustDecode(t, src("payments", tc.token)).Create(ctx, plugin.Rotation{ID: "r3"})
		if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), "not accepted") {
			t.Errorf("token %s: %v", tc.token, err)
		}
		noCanary(t, err, tc.token)
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
}

func TestKonnect(t *testing.T) {
	emu := kongemu.Start(t)
	emu.AddConsumer("", "orders-app")
	emu.SetToken(canaryToken, "")
	p := mustDecode(t, fmt.Sprintf(`
consumer = "orders-app"
konnect {
  region           = "us"
  control_plane_id = "5f1c6a5e-0000-4000-8000-000000000001"
  api_url          = %q
}
auth {
  token_file = %q
}
`, emu.URL, tokenFile(t, canaryToken)))
	ctx := context.Background()
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Policy: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].RotationID != "r1" {
		t.Fatalf("list: %+v, %v", keys, err)
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range emu.Ledger() {
		if !strings.HasPrefix(e.Path, "/v2/control-planes/5f1c6a5e-0000-4000-8000-000000000001/core-entities/consumers/orders-app/key-auth") {
			t.Errorf("request outside the control plane's core entities: %s %s", e.Method, e.Path)
		}
	}
}

func TestKongValidate(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"no admin url", `consumer = "a"`, "Missing admin_url"},
		{"both", "admin_url = \"https://k\"\nconsumer = \"a\"\nkonnect {\n  region = \"us\"\n  control_plane_id = \"x\"\n}\n", "not both"},
		{"bad consumer", "admin_url = \"https://k\"\nconsumer = \"a b\"\n", "Invalid consumer"},
		{"ttl", "admin_url = \"https://k\"\nconsumer = \"a\"\nttl = \"5y\"\n", "Invalid ttl"},
		{"own tag", "admin_url = \"https://k\"\nconsumer = \"a\"\ntags = [\"rekey-x\"]\n", "Invalid tags"},
		{"tag with comma", "admin_url = \"https://k\"\nconsumer = \"a\"\ntags = [\"a,b\"]\n", "Invalid tags"},
		{"konnect without token", "consumer = \"a\"\nkonnect {\n  region = \"us\"\n  control_plane_id = \"x\"\n}\n", "needs a token"},
		{"plain http", "admin_url = \"http://kong.internal:8001\"\nconsumer = \"a\"\n", "unencrypted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := decode(t, c.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
				t.Errorf("diagnostics %s; want an error with %q", diags, c.want)
			}
		})
	}
}

// TestRealKong runs create, list and delete against a real Kong Admin API
// when REKEY_TEST_KONG_ADMIN_URL is set (and REKEY_TEST_KONG_ADMIN_TOKEN,
// if RBAC is on). It makes a consumer of its own and deletes it.
func TestRealKong(t *testing.T) {
	admin := os.Getenv("REKEY_TEST_KONG_ADMIN_URL")
	if admin == "" {
		t.Skip("set REKEY_TEST_KONG_ADMIN_URL (and REKEY_TEST_KONG_ADMIN_TOKEN) to test against a real Kong")
	}
	token := os.Getenv("REKEY_TEST_KONG_ADMIN_TOKEN")
	consumer := "rekey-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	ctx := context.Background()
	do := func(method, path, body string) int {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(admin, "/")+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Kong-Admin-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(http.MethodPost, "/consumers", fmt.Sprintf(`{"username": %q}`, consumer)); code != http.StatusCreated && code != http.StatusConflict {
		t.Fatalf("creating consumer %s: status %d", consumer, code)
	}
	t.Cleanup(func() { do(http.MethodDelete, "/consumers/"+consumer, "") })
	auth := ""
	if token != "" {
		auth = fmt.Sprintf("auth {\n  token_env = %q\n}\n", "REKEY_TEST_KONG_ADMIN_TOKEN")
	}
	p := mustDecode(t, fmt.Sprintf("admin_url = %q\nconsumer = %q\nttl = \"1h\"\n%s", admin, consumer, auth))
	k, err := p.Create(ctx, plugin.Rotation{ID: "real-kong-1", Policy: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].RotationID != "real-kong-1" {
		t.Fatalf("list: %+v, %v", keys, err)
	}
	// Kong shows ttl as the seconds left: both expiries are about an hour
	// from now.
	for _, exp := range []time.Time{k.ExpiresAt, keys[0].ExpiresAt} {
		if d := time.Until(exp) - time.Hour; d < -time.Minute || d > time.Minute {
			t.Errorf("a credential with ttl 1h expires %s (in %s)", exp, time.Until(exp))
		}
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, k.ID); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	_, err = mustDecode(t, fmt.Sprintf("admin_url = %q\nconsumer = \"rekey-no-such-consumer\"\n%s", admin, auth)).Create(ctx, plugin.Rotation{ID: "x"})
	if !errors.Is(err, plugin.ErrNotFound) {
		t.Errorf("a missing consumer at a real Kong: %v", err)
	}
}
