package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/testenv/etcdtest"
)

// A reload may not change the journal: not from bbolt to etcd or back,
// not the endpoints, prefix, TTL or instance; where the block sits in the
// file does not count.
func TestJournalChangedRejectsAReload(t *testing.T) {
	base := policies.JournalSettings{Kind: "etcd", Endpoints: []string{"http://e:2379"}, Prefix: "/rekey/", LeaseTTL: 10 * time.Second, Instance: "a"}
	moved := base
	moved.DefRange = hcl.Range{Filename: "other.hcl"}
	ttl := base
	ttl.LeaseTTL = 20 * time.Second
	eps := base
	eps.Endpoints = []string{"http://f:2379"}
	for _, c := range []struct {
		a, b *policies.JournalSettings
		want bool
	}{
		{nil, nil, false},
		{&base, &moved, false},
		{nil, &base, true},
		{&base, nil, true},
		{&base, &ttl, true},
		{&base, &eps, true},
	} {
		if got := journalChanged(c.a, c.b); got != c.want {
			t.Errorf("journalChanged(%+v, %+v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestScopeEndsWhenOwnershipIsLost: a rotation asked through the control
// socket of the owner runs in ha.scope's context, which ends when the
// owner's lease is lost (here revoked in a real etcd), so that the
// rotation stops before its next external call. On an instance that does
// not own the policies the context is left alone (the journal refuses the
// rotation, naming the owner).
func TestScopeEndsWhenOwnershipIsLost(t *testing.T) {
	c := etcdtest.Start(t, 1)
	h, err := openHA(&policies.JournalSettings{Kind: "etcd", Endpoints: c.Endpoints(), Prefix: "/rekey-scope-test/", LeaseTTL: 2 * time.Second, Instance: "a"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer h.journal.Close()
	ctx := context.Background()

	standby, cancelStandby := h.scope(ctx)
	defer cancelStandby()

	l, err := h.join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fence, err := l.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.journal.SetFence(fence)
	h.owning.Store(true)
	owned, cancel := h.scope(ctx)
	defer cancel()
	if owned.Err() != nil {
		t.Fatalf("the owner's scope ended at once: %v", owned.Err())
	}
	if _, err := h.journal.Client().Revoke(ctx, l.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-owned.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the scope of a rotation did not end when the owner's lease was revoked")
	}
	if standby.Err() != nil {
		t.Fatalf("a scope taken while not owning ended: %v", standby.Err())
	}
}

// TestControlRotateRunsInScope: the control socket runs a rotation in the
// context its Scope gives; a scope that has ended stops the rotation
// before it creates a key.
func TestControlRotateRunsInScope(t *testing.T) {
	e := newTestEngine(t, testConfig(t, ""))
	scoped := 0
	srv := httptest.NewServer((&control.Server{Engine: e, Scope: func(ctx context.Context) (context.Context, context.CancelFunc) {
		scoped++
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return ctx, cancel
	}}).Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/rotate", "application/json", strings.NewReader(`{"policies":["p"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if scoped != 1 {
		t.Fatalf("Scope called %d times, want 1", scoped)
	}
	if st, _ := e.Status(context.Background()); len(st) != 1 || st[0].CurrentKey != "" {
		t.Fatalf("a rotation whose scope ended made a key: %+v\n%s", st, body)
	}
	if !strings.Contains(string(body), "canceled") {
		t.Fatalf("the outcome does not say the rotation was stopped:\n%s", body)
	}
}
