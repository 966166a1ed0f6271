//go:build unix

package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster serves the v3 client, loses quorum with two of three members
// stopped, and serves again once they are back with their data.
func TestClusterQuorum(t *testing.T) {
	c := Start(t, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	put := func(v string) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "k", v)
		return err
	}
	if err := put("1"); err != nil {
		t.Fatal(err)
	}
	c.StopMember(1)
	if err := put("2"); err != nil {
		t.Fatalf("one member down, quorum kept: %v", err)
	}
	c.StopMember(2)
	if err := put("3"); err == nil {
		t.Fatal("a write succeeded without quorum")
	}
	c.StartMember(t, 1)
	c.StartMember(t, 2)
	if err := c.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := put("4"); err != nil {
		t.Fatalf("after quorum returned: %v", err)
	}
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := cli.Get(gctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "4" {
		t.Fatalf("get = %v, %v", r, err)
	}
}
