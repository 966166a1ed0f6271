package kongemu

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path, ctype, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Kong-Admin-Token", c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (c client) json(method, path, body string) (int, map[string]any) {
	return c.do(method, path, "application/json", body)
}

// TestDocumentedBehaviour holds the emulator to the Kong Admin API
// reference: status codes, the consumer reference by username or id,
// generated keys, 409 on a duplicate key, pagination with next, tags
// filters, ttl expiry, form bodies, idempotent deletes, workspaces, RBAC
// and the key-auth plugin's answers at the proxy.
func TestDocumentedBehaviour(t *testing.T) {
	s := Start(t)
	c := client{t: t, base: s.URL}
	code, cons := c.json(http.MethodPost, "/consumers", `{"username": "orders-app"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /consumers: %d", code)
	}
	if code, _ := c.json(http.MethodPost, "/consumers", `{"username": "orders-app"}`); code != http.StatusConflict {
		t.Errorf("a second consumer with the same username: %d, want 409", code)
	}
	id := cons["id"].(string)
	if code, _ := c.json(http.MethodGet, "/consumers/"+id, ""); code != http.StatusOK {
		t.Errorf("consumer by id: %d", code)
	}
	if code, m := c.json(http.MethodPost, "/consumers/nobody/key-auth", `{}`); code != http.StatusNotFound || m["message"] != "Not found" {
		t.Errorf("key-auth of a missing consumer: %d %v, want 404 Not found", code, m)
	}
	code, k1 := c.json(http.MethodPost, "/consumers/orders-app/key-auth", `{"tags": ["rekey", "a"]}`)
	if code != http.StatusCreated || k1["key"] == "" || k1["id"] == "" || k1["consumer"].(map[string]any)["id"] != id {
		t.Fatalf("create: %d %v", code, k1)
	}
	if _, ok := k1["created_at"].(float64); !ok {
		t.Errorf("created_at is not a number of seconds: %v", k1["created_at"])
	}
	if code, _ := c.json(http.MethodPost, "/consumers/"+id+"/key-auth", `{"key": "`+k1["key"].(string)+`"}`); code != http.StatusConflict {
		t.Errorf("a duplicate key: %d, want 409", code)
	}
	if code, _ := c.json(http.MethodPost, "/consumers/orders-app/key-auth", `{"tags": ["a,b"]}`); code != http.StatusBadRequest {
		t.Errorf("a tag with a comma: %d, want 400", code)
	}
	if code, _ := c.do(http.MethodPost, "/consumers/orders-app/key-auth", "application/x-www-form-urlencoded", url.Values{"key": {"form-key-1"}, "tags[]": {"b"}}.Encode()); code != http.StatusCreated {
		t.Errorf("a form body: %d", code)
	}
	for range 3 {
		c.json(http.MethodPost, "/consumers/orders-app/key-auth", `{"tags": ["a"]}`)
	}
	if code, _ := c.json(http.MethodGet, "/consumers/orders-app/key-auth?size=1001", ""); code != http.StatusBadRequest {
		t.Errorf("size 1001: %d, want 400", code)
	}
	var all []any
	next := "/consumers/orders-app/key-auth?size=2"
	pages := 0
	for next != "" {
		code, m := c.json(http.MethodGet, next, "")
		if code != http.StatusOK {
			t.Fatalf("list %s: %d", next, code)
		}
		all = append(all, m["data"].([]any)...)
		next, _ = m["next"].(string)
		pages++
	}
	if len(all) != 5 || pages != 3 {
		t.Errorf("listed %d credentials in %d pages, want 5 in 3", len(all), pages)
	}
	count := func(q string) int {
		_, m := c.json(http.MethodGet, "/consumers/orders-app/key-auth?tags="+url.QueryEscape(q), "")
		return len(m["data"].([]any))
	}
	if n := count("rekey,a"); n != 1 {
		t.Errorf("tags=rekey,a (all): %d, want 1", n)
	}
	if n := count("a/b"); n != 5 {
		t.Errorf("tags=a/b (any): %d, want 5", n)
	}
	if code, _ := c.json(http.MethodDelete, "/consumers/orders-app/key-auth/"+k1["id"].(string), ""); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := c.json(http.MethodDelete, "/consumers/orders-app/key-auth/"+k1["id"].(string), ""); code != http.StatusNoContent {
		t.Errorf("delete again: %d, want 204", code)
	}
	if code, _ := c.json(http.MethodDelete, "/consumers/nobody/key-auth/x", ""); code != http.StatusNotFound {
		t.Errorf("delete under a missing consumer: %d, want 404", code)
	}

	now := time.Now()
	s.SetClock(func() time.Time { return now })
	_, kt := c.json(http.MethodPost, "/consumers/orders-app/key-auth", `{"ttl": 60}`)
	proxy := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/proxy/orders", nil)
		if key != "" {
			req.Header.Set("apikey", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if proxy(kt["key"].(string)) != http.StatusOK || proxy("") != http.StatusUnauthorized || proxy("nope") != http.StatusUnauthorized {
		t.Error("the proxy does not answer 200 for a live key and 401 otherwise")
	}
	if kt["ttl"] != float64(60) {
		t.Errorf("the created credential shows ttl %v, want the 60 s it has left", kt["ttl"])
	}
	s.SetClock(func() time.Time { return now.Add(45 * time.Second) })
	if _, got := c.json(http.MethodGet, "/consumers/orders-app/key-auth/"+kt["id"].(string), ""); got["ttl"] != float64(15) {
		t.Errorf("45 s later the credential shows ttl %v, want the 15 s it has left", got["ttl"])
	}
	if _, page := c.json(http.MethodGet, "/consumers/orders-app/key-auth?tags=", ""); !strings.Contains(fmtJSON(page), `"ttl":15`) {
		t.Errorf("the list shows %s, want ttl 15 for the credential", fmtJSON(page))
	}
	s.SetClock(func() time.Time { return now.Add(61 * time.Second) })
	if proxy(kt["key"].(string)) != http.StatusUnauthorized {
		t.Error("a credential past its ttl is still accepted")
	}
	if code, _ := c.json(http.MethodGet, "/consumers/orders-app/key-auth/"+kt["id"].(string), ""); code != http.StatusNotFound {
		t.Errorf("a credential past its ttl: %d, want 404", code)
	}

	s.AddWorkspace("payments")
	if code, _ := c.json(http.MethodGet, "/payments/consumers/orders-app", ""); code != http.StatusNotFound {
		t.Errorf("a consumer of the default workspace seen from another: %d", code)
	}
	if code, _ := c.json(http.MethodGet, "/nowhere/consumers", ""); code != http.StatusNotFound {
		t.Errorf("an unknown workspace: %d", code)
	}

	s.SetToken("admin-token", "read-token")
	if code, _ := c.json(http.MethodGet, "/consumers/orders-app/key-auth", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	c.token = "read-token"
	if code, _ := c.json(http.MethodGet, "/consumers/orders-app/key-auth", ""); code != http.StatusOK {
		t.Errorf("read token reading: %d", code)
	}
	if code, _ := c.json(http.MethodPost, "/consumers/orders-app/key-auth", `{}`); code != http.StatusForbidden {
		t.Errorf("read token writing: %d, want 403", code)
	}
	if len(s.Ledger()) == 0 {
		t.Error("empty ledger")
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
