package vaultkv_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// BenchmarkCurrentPromote measures one Current plus one Promote (metadata
// read, metadata claim, check-and-set write, read back) against a real
// Vault dev server on 127.0.0.1.
func BenchmarkCurrentPromote(b *testing.B) {
	srv := vaulttest.Start(b)
	srv.EnableKV(b, "kv", 2, vaulttest.CASRequired())
	conn, _ := srv.Connection(b, "")
	s := newSink(b, conn, "kv", "bench/creds", "")
	ctx := context.Background()
	if _, err := s.Current(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		prev, err := s.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Promote(ctx, rotation(fmt.Sprintf("rot-%d", i)), key("id", fmt.Sprintf("value-%d", i)), sinks.State{Prev: prev}); err != nil {
			b.Fatal(err)
		}
	}
}
