package vaultapprole_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// TestExpiry: a secret id created with a lifetime reports when it expires,
// from the create answer (secret_id_ttl) and from List (the lookup's
// expiration_time); the policy's key_ttl overrides the block's ttl; a
// secret id without a lifetime reports none.
func TestExpiry(t *testing.T) {
	t.Parallel()
	_, conn, _ := setup(t)
	ctx := context.Background()
	p := newProvider(t, conn, "ttl = \"1h\"\n")
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("vault_approle_secret_id does not accept key_ttl")
	}
	before := time.Now().Add(-time.Second)
	k1, err := p.Create(ctx, plugin.Rotation{ID: "rot-ttl", Policy: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if d := k1.ExpiresAt.Sub(before); d < time.Hour-2*time.Second || d > time.Hour+2*time.Second {
		t.Fatalf("ExpiresAt %s is not 1h after creation (%s)", k1.ExpiresAt, before)
	}
	k2, err := p.Create(ctx, plugin.Rotation{ID: "rot-keyttl", Policy: "app", KeyTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if d := k2.ExpiresAt.Sub(before); d < 10*time.Minute-2*time.Second || d > 10*time.Minute+2*time.Second {
		t.Fatalf("key_ttl 10m: ExpiresAt %s", k2.ExpiresAt)
	}
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, k := range keys {
		want := map[string]time.Time{k1.ID: k1.ExpiresAt, k2.ID: k2.ExpiresAt}[k.ID]
		if want.IsZero() {
			continue
		}
		found++
		if d := k.ExpiresAt.Sub(want); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("List: key expires at %s, create said %s", k.ExpiresAt, want)
		}
	}
	if found != 2 {
		t.Fatalf("List found %d of the 2 keys", found)
	}
	never := newProvider(t, conn, "")
	k3, err := never.Create(ctx, plugin.Rotation{ID: "rot-never", Policy: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if !k3.ExpiresAt.IsZero() {
		t.Fatalf("a secret id without ttl reports expiry %s", k3.ExpiresAt)
	}
	keys, _ = never.(providers.Lister).List(ctx)
	for _, k := range keys {
		if k.ID == k3.ID && !k.ExpiresAt.IsZero() {
			t.Fatalf("List: a secret id without ttl reports expiry %s", k.ExpiresAt)
		}
	}
}
