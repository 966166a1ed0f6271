package etcdjournal

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leadership is one instance's presence in the cluster and its candidacy:
// a lease kept alive by a session, the instance's key under
// <prefix>instances/ on that lease, and, once Campaign returns, the
// election key that fences the journal.
type Leadership struct {
	instance string
	prefix   string
	session  *concurrency.Session
	election *concurrency.Election
}

// Join starts a session with a lease of ttl and announces the instance
// under <prefix>instances/. Close ends both. The lease is kept alive
// until Close or until ctx ends; without quorum Join fails within
// DefaultOpTimeout.
func Join(ctx context.Context, cli *clientv3.Client, prefix, instance string, ttl time.Duration) (*Leadership, error) {
	secs := int(ttl.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	octx, cancel := context.WithTimeout(ctx, DefaultOpTimeout)
	defer cancel()
	g, err := cli.Grant(octx, int64(secs))
	if err != nil {
		return nil, fmt.Errorf("etcd: granting a lease: %w", err)
	}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(secs), concurrency.WithLease(g.ID), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd: starting a session: %w", err)
	}
	if _, err := cli.Put(octx, prefix+"instances/"+instance, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(s.Lease())); err != nil {
		s.Close()
		return nil, fmt.Errorf("etcd: announcing instance %s: %w", instance, err)
	}
	return &Leadership{instance: instance, prefix: prefix, session: s, election: concurrency.NewElection(s, prefix+"election")}, nil
}

// Campaign blocks until this instance is the owner, ctx ends or the
// session is lost, and returns the fence of its election key.
func (l *Leadership) Campaign(ctx context.Context) (*Fence, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-l.session.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := l.election.Campaign(ctx, l.instance); err != nil {
		select {
		case <-l.session.Done():
			return nil, fmt.Errorf("etcd: campaigning: %w", ErrNotOwner)
		default:
		}
		return nil, fmt.Errorf("etcd: campaigning: %w", err)
	}
	return &Fence{Key: l.election.Key(), Rev: l.election.Rev()}, nil
}

// Done is closed when the session's lease is lost (expired, revoked, or
// not renewed in time): from then on the fence no longer holds.
func (l *Leadership) Done() <-chan struct{} { return l.session.Done() }

// Close resigns (if leader) and revokes the lease, so that another
// instance takes over at once instead of after the TTL.
func (l *Leadership) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultOpTimeout)
	defer cancel()
	if l.election.Key() != "" {
		_ = l.election.Resign(ctx)
	}
	return l.session.Close()
}

// Owner returns the instance that owns the policies, or "" when none
// does.
func Owner(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultOpTimeout)
	defer cancel()
	r, err := cli.Get(ctx, prefix+"election/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("etcd: reading the owner: %w", err)
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return string(r.Kvs[0].Value), nil
}

// Instances returns the instances whose lease is alive, sorted.
func Instances(ctx context.Context, cli *clientv3.Client, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultOpTimeout)
	defer cancel()
	p := prefix + "instances/"
	r, err := cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: listing instances: %w", err)
	}
	out := make([]string, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), p))
	}
	sort.Strings(out)
	return out, nil
}

// Lease returns the session's lease id.
func (l *Leadership) Lease() clientv3.LeaseID { return l.session.Lease() }
