//go:build unix

package etcdjournal_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/policies"
	_ "github.com/rekeyhq/rekey/providers/random"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
	_ "github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/testenv/etcdtest"
)

// counting counts a journal's writes.
type counting struct {
	rotator.Journal
	updates atomic.Int64
}

func (c *counting) Update(ctx context.Context, policy string, fn func(*rotator.PolicyState) error) (rotator.PolicyState, error) {
	c.updates.Add(1)
	return c.Journal.Update(ctx, policy, fn)
}

// BenchmarkJournalPerRotation runs complete rotations through the engine
// with real in-process kinds (the random provider and the file sink, no
// probes) over the embedded bbolt journal and over the etcd journal (a
// 3-member cluster on this machine, fenced by an election as in the
// daemon), and reports the journal writes per rotation.
func BenchmarkJournalPerRotation(b *testing.B) {
	c := etcdtest.Start(b, 3)
	for _, backend := range []string{"bolt", "etcd"} {
		b.Run(backend, func(b *testing.B) {
			dir := b.TempDir()
			src := fmt.Sprintf(`
state_dir = %q
policy "bench" {
  every        = "1h"
  rotate_blind = true
  provider "random" {
    bytes = 32
    field = "k"
  }
  sink "file" {
    path   = %q
    format = "json"
  }
  revoke {
    after = "0s"
  }
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "secret.json"))
			cfg, diags := policies.NewLoader().LoadSources(map[string][]byte{filepath.Join(dir, "rekey.hcl"): []byte(src)})
			if diags.HasErrors() {
				b.Fatal(diags)
			}
			var j rotator.Journal
			switch backend {
			case "bolt":
				bj, err := rotator.OpenBoltJournal(cfg.StateDir)
				if err != nil {
					b.Fatal(err)
				}
				defer bj.Close()
				j = bj
			case "etcd":
				ej, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: prefix()})
				if err != nil {
					b.Fatal(err)
				}
				defer ej.Close()
				l, err := etcdjournal.Join(context.Background(), ej.Client(), ej.Prefix(), "bench", 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				f, err := l.Campaign(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				ej.SetFence(f)
				j = ej
			}
			cj := &counting{Journal: j}
			e, err := rotator.New(rotator.Options{Journal: cj, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			e.SetPolicies(cfg.Policies)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if out, err := e.Rotate(ctx, "bench", rotator.RotateOptions{UntilDone: true}); err != nil || out.Result != rotator.OutcomeDone {
					b.Fatalf("%+v %v", out, err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rotations/s")
			b.ReportMetric(float64(cj.updates.Load())/float64(b.N), "journal-writes/rotation")
		})
	}
}

// BenchmarkElectionFailover measures, with lease_ttl = 2s, the time from
// the owner's death (its client closed without revoking its lease, as a
// SIGKILL leaves it) to the moment a waiting instance owns the policies
// and its first fenced journal write succeeds.
func BenchmarkElectionFailover(b *testing.B) {
	c := etcdtest.Start(b, 3)
	ctx := context.Background()
	var total time.Duration
	for range b.N {
		p := prefix()
		dead, err := etcdjournal.Dial(etcdjournal.Config{Endpoints: c.Endpoints()})
		if err != nil {
			b.Fatal(err)
		}
		a, err := etcdjournal.Join(ctx, dead, p, "a", 2*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Campaign(ctx); err != nil {
			b.Fatal(err)
		}
		jb, err := etcdjournal.Open(etcdjournal.Config{Endpoints: c.Endpoints(), Prefix: p})
		if err != nil {
			b.Fatal(err)
		}
		l, err := etcdjournal.Join(ctx, jb.Client(), p, "b", 2*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		won := make(chan *etcdjournal.Fence, 1)
		go func() {
			f, err := l.Campaign(ctx)
			if err != nil {
				b.Error(err)
			}
			won <- f
		}()
		time.Sleep(700 * time.Millisecond) // a random point between two keep-alives
		killed := time.Now()
		dead.Close()
		f := <-won
		jb.SetFence(f)
		if _, err := jb.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation++; return nil }); err != nil {
			b.Fatal(err)
		}
		total += time.Since(killed)
		l.Close()
		jb.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}
