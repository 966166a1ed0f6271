package kong

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/testenv/kongemu"
)

// TestKongExpiry: the expiry of a credential with a ttl (the block's or a
// policy's key_ttl) is read from what Kong shows (the seconds left), in
// the create answer and in listings, against the emulator with a clock.
func TestKongExpiry(t *testing.T) {
	emu := kongemu.Start(t)
	emu.AddConsumer("", "orders-app")
	now := time.Now().UTC().Truncate(time.Second)
	emu.SetClock(func() time.Time { return now })
	ctx := context.Background()
	block := func(extra string) string {
		return fmt.Sprintf("admin_url = %q\nconsumer = \"orders-app\"\n%s", emu.URL, extra)
	}
	// The block's own ttl.
	p := mustDecode(t, block(`ttl = "90d"`))
	k, err := p.Create(ctx, plugin.Rotation{ID: "r1", Policy: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(90 * 24 * time.Hour); !near(k.ExpiresAt, want) {
		t.Fatalf("key expires %s, want %s", k.ExpiresAt, want)
	}
	// key_ttl, on a block without ttl: sent as ttl.
	p = mustDecode(t, block(""))
	if tt, ok := p.(providers.KeyTTLTaker); !ok || !tt.AcceptsKeyTTL() {
		t.Fatal("the kong provider does not take key_ttl")
	}
	k2, err := p.Create(ctx, plugin.Rotation{ID: "r2", Policy: "orders", KeyTTL: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var sent *int
	for _, c := range emu.Credentials("", "orders-app") {
		if c.ID == k2.ID {
			sent = c.TTL
		}
	}
	if sent == nil || *sent != 6*3600 {
		t.Fatalf("key_ttl was sent as ttl %v, want 21600", sent)
	}
	if !near(k2.ExpiresAt, now.Add(6*time.Hour)) {
		t.Fatalf("key expires %s, want %s", k2.ExpiresAt, now.Add(6*time.Hour))
	}
	k3, err := p.Create(ctx, plugin.Rotation{ID: "r3", Policy: "orders"})
	if err != nil || !k3.ExpiresAt.IsZero() {
		t.Fatalf("a key created without ttl expires %s, %v", k3.ExpiresAt, err)
	}
	// Two hours on, Kong shows the seconds left; the expiry read from a
	// listing is the same instant, not two hours later.
	later := now.Add(2 * time.Hour)
	emu.SetClock(func() time.Time { return later })
	keys, err := p.(providers.Lister).List(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("List = %+v, %v", keys, err)
	}
	got := map[string]time.Time{}
	for _, k := range keys {
		got[k.ID] = k.ExpiresAt
	}
	// The listing counts the seconds left from the time it is read (the
	// test's clock, not the emulator's), so compare the seconds left.
	left := func(id string) time.Duration { return time.Until(got[id]) }
	if d := left(k2.ID) - 4*time.Hour; d < -10*time.Second || d > 10*time.Second {
		t.Errorf("listed key_ttl key has %s left, want 4h", left(k2.ID))
	}
	if d := left(k.ID) - (90*24*time.Hour - 2*time.Hour); d < -10*time.Second || d > 10*time.Second {
		t.Errorf("listed ttl key has %s left, want 90d-2h", left(k.ID))
	}
	if !got[k3.ID].IsZero() {
		t.Errorf("a key without ttl lists expiry %s", got[k3.ID])
	}
}

func near(a, b time.Time) bool { d := a.Sub(b); return d > -10*time.Second && d < 10*time.Second }

func TestKongKeyTTLChecks(t *testing.T) {
	cases := []struct {
		block string
		ttl   time.Duration
		want  string
	}{
		{`ttl = "90d"`, 24 * time.Hour, "remove ttl"},
		{"", 1500 * time.Millisecond, "whole number of seconds"},
		{"", 4 * 365 * 24 * time.Hour, "at most 100000000"},
		{"", 30 * 24 * time.Hour, ""},
	}
	for _, c := range cases {
		p := mustDecode(t, "admin_url = \"https://kong.internal:8444\"\nconsumer = \"a\"\n"+c.block+"\n")
		ch, ok := p.(providers.KeyTTLChecker)
		if !ok {
			t.Fatal("the kong provider does not check key_ttl")
		}
		err := ch.CheckKeyTTL(c.ttl)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q, key_ttl %s: %v", c.block, c.ttl, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q, key_ttl %s: %v, want %q", c.block, c.ttl, err, c.want)
		}
	}
}
