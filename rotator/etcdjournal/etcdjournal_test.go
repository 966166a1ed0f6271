//go:build unix

package etcdjournal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
	"github.com/rekeyhq/rekey/rotator/journaltest"
	"github.com/rekeyhq/rekey/testenv/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var seq atomic.Int64

func prefix() string { return fmt.Sprintf("/rekey-test-%d/", seq.Add(1)) }

func open(t *testing.T, c *etcdtest.Cluster, prefix string) *etcdjournal.Journal {
	t.Helper()
	j, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// join enters j's instance in the election under prefix p; it leaves when
// the test ends.
func join(t *testing.T, j *etcdjournal.Journal, p, instance string, ttl time.Duration) *etcdjournal.Leadership {
	t.Helper()
	l, err := etcdjournal.Join(context.Background(), j.Client(), p, instance, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// win waits until l owns the journal and fences j's writes on it.
func win(t *testing.T, j *etcdjournal.Journal, l *etcdjournal.Leadership) {
	t.Helper()
	f, err := l.Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	j.SetFence(f)
}

// One cluster serves every test of the package: starting one takes about
// a second, and each test works under its own prefix.
func TestEtcdJournal(t *testing.T) {
	c := etcdtest.Start(t, 3)
	t.Run("Suite", func(t *testing.T) {
		journaltest.Run(t, func(t *testing.T) rotator.Journal { return open(t, c, prefix()) })
	})
	t.Run("FencedSuite", func(t *testing.T) {
		journaltest.Run(t, func(t *testing.T) rotator.Journal {
			p := prefix()
			j := open(t, c, p)
			win(t, j, join(t, j, p, "solo", 5*time.Second))
			return j
		})
	})
	t.Run("StaleOwnerCannotWrite", func(t *testing.T) { staleOwner(t, c) })
	t.Run("QuorumLoss", func(t *testing.T) { quorumLoss(t, c) })
	t.Run("WipedJournalIsNeverWritten", func(t *testing.T) { wiped(t, c) })
}

// The journal is deleted from etcd (or replaced) under its owner, and a
// standby then wins the election with the old keys gone: neither writes
// the wiped journal as if it were a fresh one; both are refused with
// ErrJournalLost and nothing is created.
func wiped(t *testing.T, c *etcdtest.Cluster) {
	ctx := context.Background()
	p := prefix()
	ja, jb := open(t, c, p), open(t, c, p)
	id, _, err := ja.Identity(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	ja.RequireIdentity(id)
	jb.RequireIdentity(id)
	win(t, ja, join(t, ja, p, "a", 5*time.Second))
	if _, err := ja.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := ja.CheckIdentity(ctx); err != nil {
		t.Fatalf("CheckIdentity before the wipe: %v", err)
	}
	if _, err := ja.Client().Delete(ctx, p, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if err := ja.CheckIdentity(ctx); !errors.Is(err, rotator.ErrJournalLost) {
		t.Errorf("CheckIdentity after the wipe = %v, want ErrJournalLost", err)
	}
	win(t, jb, join(t, jb, p, "b", 5*time.Second))
	for name, j := range map[string]*etcdjournal.Journal{"owner": ja, "standby that won": jb} {
		if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation++; return nil }); !errors.Is(err, rotator.ErrJournalLost) {
			t.Errorf("%s: update of the wiped journal = %v, want ErrJournalLost", name, err)
		}
	}
	if _, err := ja.Client().Put(ctx, p+"journal_id", "another"); err != nil {
		t.Fatal(err)
	}
	if _, err := jb.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation++; return nil }); !errors.Is(err, rotator.ErrJournalLost) || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("update of a replaced journal = %v, want ErrJournalLost (replaced)", err)
	}
	if _, ok, err := jb.Get(ctx, "p"); ok || err != nil {
		t.Errorf("a record was written to the wiped journal (%v)", err)
	}
}

// The owner's lease is lost (revoked here, as an expiry after a pause
// would); another instance wins; every write of the old owner is refused
// with ErrNotOwner and changes nothing, while the new owner writes.
func staleOwner(t *testing.T, c *etcdtest.Cluster) {
	ctx := context.Background()
	p := prefix()
	ja, jb := open(t, c, p), open(t, c, p)
	a := join(t, ja, p, "a", 2*time.Second)
	b := join(t, jb, p, "b", 2*time.Second)
	win(t, ja, a)
	if _, err := ja.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if owner, err := etcdjournal.Owner(ctx, ja.Client(), p); err != nil || owner != "a" {
		t.Fatalf("owner = %q, %v", owner, err)
	}
	if inst, err := etcdjournal.Instances(ctx, ja.Client(), p); err != nil || len(inst) != 2 {
		t.Fatalf("instances = %v, %v", inst, err)
	}
	won := make(chan *etcdjournal.Fence, 1)
	go func() {
		f, err := b.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		won <- f
	}()
	// What an expired lease does: the election key and the instance key
	// of a go away.
	if _, err := ja.Client().Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	fb := <-won
	jb.SetFence(fb)
	if _, err := ja.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 99; return nil }); !errors.Is(err, etcdjournal.ErrNotOwner) {
		t.Fatalf("stale owner's update = %v, want ErrNotOwner", err)
	}
	if _, err := ja.Update(ctx, "q", func(st *rotator.PolicyState) error { return nil }); !errors.Is(err, etcdjournal.ErrNotOwner) {
		t.Fatalf("stale owner's first write of a policy = %v, want ErrNotOwner", err)
	}
	if _, err := jb.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation++; return nil }); err != nil {
		t.Fatal(err)
	}
	st, _, err := jb.Get(ctx, "p")
	if err != nil || st.Generation != 2 {
		t.Fatalf("after takeover: generation %d, %v (want 2: the stale write must not land)", st.Generation, err)
	}
	if _, ok, _ := jb.Get(ctx, "q"); ok {
		t.Fatal("the stale owner created a record")
	}
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lost session did not report Done")
	}
	if owner, err := etcdjournal.Owner(ctx, jb.Client(), p); err != nil || owner != "b" {
		t.Fatalf("owner = %q, %v", owner, err)
	}
}

// Without quorum every journal operation fails (within the operation
// timeout) instead of answering from a minority; with quorum back the
// record is there and writes go on.
func quorumLoss(t *testing.T, c *etcdtest.Cluster) {
	ctx := context.Background()
	p := prefix()
	j := open(t, c, p)
	if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	c.StopMember(1)
	c.StopMember(2)
	if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 2; return nil }); err == nil {
		t.Fatal("an update succeeded without quorum")
	}
	if _, _, err := j.Get(ctx, "p"); err == nil {
		t.Fatal("a read succeeded without quorum (it must be linearizable)")
	}
	c.StartMember(t, 1)
	c.StartMember(t, 2)
	if err := c.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error {
		if st.Generation != 1 {
			return fmt.Errorf("generation %d after quorum returned, want 1", st.Generation)
		}
		st.Generation = 3
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// With https endpoints that require a client certificate, the journal
// works with ca_file, cert_file and key_file, and is refused without the
// client certificate.
func TestEtcdJournalTLS(t *testing.T) {
	c := etcdtest.StartTLS(t, 1)
	ctx := context.Background()
	j, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: prefix(), CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	anon, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: prefix(), CAFile: c.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, _, err := anon.Get(ctx, "p"); err == nil {
		t.Fatal("a client without a certificate read the journal")
	}
	if _, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), CAFile: c.CertFile + ".missing"}); err == nil {
		t.Fatal("a missing ca_file was accepted")
	}
}
