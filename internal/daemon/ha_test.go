package daemon

import (
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/policies"
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
