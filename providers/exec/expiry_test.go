package exec

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// TestExpiresAtAndKeyTTL: the create command receives a policy's key_ttl
// as REKEY_KEY_TTL (seconds, absent without key_ttl) and may print when
// the key expires; list may print it too.
func TestExpiresAtAndKeyTTL(t *testing.T) {
	t.Parallel()
	skipWindows(t)
	p := mustDecode(t, `
create = ["/bin/sh", "-c", "if [ -n \"$${REKEY_KEY_TTL:-}\" ]; then d=2; else d=9; fi; printf '{\"id\": \"k-%s\", \"value\": {\"token\": \"x\"}, \"created_at\": \"2026-01-01T00:00:00Z\", \"expires_at\": \"2026-01-0%sT00:00:00Z\"}' \"$${REKEY_KEY_TTL:-none}\" \"$d\""]
delete = ["/bin/true"]
list   = ["/bin/sh", "-c", "printf '{\"keys\": [{\"id\": \"a\", \"status\": \"active\", \"expires_at\": \"2026-02-01T00:00:00Z\"}, {\"id\": \"b\", \"status\": \"active\"}]}'"]
`)
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("exec does not accept key_ttl")
	}
	ctx := context.Background()
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", KeyTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "k-86400" || !k.ExpiresAt.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("with key_ttl 24h: id %s, expires %s", k.ID, k.ExpiresAt)
	}
	k, err = p.Create(ctx, plugin.Rotation{ID: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "k-none" || !k.ExpiresAt.Equal(time.Date(2026, 1, 9, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("without key_ttl: id %s, expires %s", k.ID, k.ExpiresAt)
	}
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].ExpiresAt.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) || !keys[1].ExpiresAt.IsZero() {
		t.Fatalf("list: %+v", keys)
	}
}
