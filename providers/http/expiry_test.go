package http

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// withExpiry turns the key API's standard block into one that sends
// key_ttl in the create body (as bodyPart) and reads the expiry with
// attr (expires_at or expires_in) from the create and list answers.
func withExpiry(t *testing.T, cfg, bodyPart, attr string) string {
	t.Helper()
	const body = `body = "{\"tags\": [\"rekey\", \"rekey-rotation:{{ .RotationID }}\", {{ json .Policy }}]}"`
	if !strings.Contains(cfg, body) {
		t.Fatal("the key API's block changed")
	}
	cfg = strings.Replace(cfg, body, `body = "{\"tags\": [\"rekey\", \"rekey-rotation:{{ .RotationID }}\", {{ json .Policy }}]`+bodyPart+`}"`, 1)
	cfg = strings.Replace(cfg, `  created_at = "created_at"
}`, `  created_at = "created_at"
  `+attr+` = "`+attr+`"
}`, 1)
	return strings.Replace(cfg, `  created_at  = "created_at"
`, `  created_at  = "created_at"
  `+attr+` = "`+attr+`"
`, 1)
}

func TestKeyTTLAndExpiry(t *testing.T) {
	cases := []struct{ name, body, attr string }{
		{"ttl in seconds, expires_at read", `{{ if .KeyTTL }}, \"ttl\": {{ .KeyTTL }}{{ end }}`, "expires_at"},
		{"an OpenAI-style expires_at, expires_in read", `{{ if .KeyTTL }}, \"expires_at\": {{ .ExpiresAtUnix }}{{ end }}`, "expires_in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, srv := newKeyAPI(t)
			p := mustDecode(t, withExpiry(t, a.config(t, srv.URL, ""), c.body, c.attr))
			if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
				t.Fatal("a create body using the key_ttl variables does not take key_ttl")
			}
			ctx := context.Background()
			k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Policy: "orders", Generation: 1, KeyTTL: 2 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			a.mu.Lock()
			stored := a.keys[0].ExpiresAt
			a.mu.Unlock()
			if stored == nil {
				t.Fatal("the API was not asked for a lifetime")
			}
			want := time.Unix(*stored, 0).UTC()
			if d := want.Sub(time.Now().Add(2 * time.Hour)); d < -10*time.Second || d > 10*time.Second {
				t.Fatalf("the API keeps the key until %s, want about 2h from now", want)
			}
			if d := k.ExpiresAt.Sub(want); d < -2*time.Second || d > 2*time.Second {
				t.Fatalf("key expires %s, the API says %s", k.ExpiresAt, want)
			}
			k2, err := p.Create(ctx, plugin.Rotation{ID: "r2", Policy: "orders", Generation: 2})
			if err != nil || !k2.ExpiresAt.IsZero() {
				t.Fatalf("a key created without key_ttl expires %s, %v", k2.ExpiresAt, err)
			}
			keys, err := p.(providers.Lister).List(ctx)
			if err != nil || len(keys) != 2 {
				t.Fatalf("List = %+v, %v", keys, err)
			}
			if d := keys[0].ExpiresAt.Sub(want); d < -2*time.Second || d > 2*time.Second || !keys[1].ExpiresAt.IsZero() {
				t.Fatalf("listed expiries %s and %s, want %s and none", keys[0].ExpiresAt, keys[1].ExpiresAt, want)
			}
		})
	}
}

func TestKeyTTLNotTaken(t *testing.T) {
	a, srv := newKeyAPI(t)
	p := mustDecode(t, a.config(t, srv.URL, ""))
	if tt, ok := p.(providers.KeyTTLTaker); ok && tt.AcceptsKeyTTL() {
		t.Fatal("a create request that does not send the lifetime claims to take key_ttl")
	}
}

func TestExpiryValidate(t *testing.T) {
	a, srv := newKeyAPI(t)
	base := a.config(t, srv.URL, "")
	cases := map[string]string{
		withExpiry(t, base, "", "expires_at") + "\n": "",
		strings.Replace(withExpiry(t, base, "", "expires_at"), `  expires_at = "expires_at"
}`, `  expires_at = "expires_at"
  expires_in = "ttl"
}`, 1): "expires_at and expires_in",
		strings.Replace(base, `delete     { path = "/v1/keys/{{ .KeyID }}" }`, `delete     {
  path = "/v1/keys/{{ .KeyID }}"
  expires_at = "x"
}`, 1): "Unexpected expires_at",
		strings.Replace(base, `/v1/keys/{{ .KeyID }}" }`, `/v1/keys/{{ .KeyID }}?ttl={{ .KeyTTL }}" }`, 1): "KeyTTL",
		strings.Replace(base, `  created_at = "created_at"
}`, `  created_at = "created_at"
  expires_in = "data["
}`, 1): "Invalid JMESPath in expires_in",
	}
	for src, want := range cases {
		_, diags := decode(t, src)
		switch {
		case want == "" && diags.HasErrors():
			t.Errorf("valid block refused: %s", diags)
		case want != "" && !strings.Contains(diags.Error(), want):
			t.Errorf("diagnostics %q lack %q", diags.Error(), want)
		case want != "" && !strings.Contains(diags.Error(), "policy.hcl:"):
			t.Errorf("diagnostics %q do not name file:line", diags.Error())
		}
	}
}

func TestCreateCommandKeyTTL(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	a, srv := newKeyAPI(t)
	script := filepath.Join(t.TempDir(), "create.sh")
	// The command gives the key the lifetime it is asked for and says when
	// it ends, as the exec provider's contract does.
	if err := os.WriteFile(script, []byte(`#!/bin/sh
exp=""
[ -n "$REKEY_KEY_TTL" ] && exp=", \"expires_at\": \"$(date -u -d "@$(( $(date +%s) + REKEY_KEY_TTL ))" +%Y-%m-%dT%H:%M:%SZ)\""
printf '{"id": "ext-%s", "value": {"api_key": "v"}%s}' "$REKEY_ROTATION_ID" "$exp"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	src := a.config(t, srv.URL, "")
	src = src[:strings.Index(src, "create {")] + fmt.Sprintf("create_command = [%q]\n", script) + src[strings.Index(src, "list {"):]
	p := mustDecode(t, src)
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("create_command does not take key_ttl")
	}
	k, err := p.Create(context.Background(), plugin.Rotation{ID: "r1", Policy: "orders", KeyTTL: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if d := k.ExpiresAt.Sub(time.Now().Add(3 * time.Hour)); d < -10*time.Second || d > 10*time.Second {
		t.Fatalf("key expires %s, want about 3h from now", k.ExpiresAt)
	}
	if k, err := p.Create(context.Background(), plugin.Rotation{ID: "r2", Policy: "orders"}); err != nil || !k.ExpiresAt.IsZero() {
		t.Fatalf("without key_ttl: expires %s, %v", k.ExpiresAt, err)
	}
}
