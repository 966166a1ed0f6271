// Package etcdjournal is a rotator.Journal on etcd, for several rekey
// instances sharing one state, and the election that makes one of them
// the owner of every policy.
//
// Each policy is one key, <prefix>policies/<name>, holding the same JSON
// as the bbolt journal. Every Update is fenced: its read and its write are
// etcd transactions conditioned on the election key this instance won
// still existing with the create revision it had when it won. An instance
// whose lease expired (a pause, a partition, a lost quorum) can therefore
// not write one more record: its Update fails with ErrNotOwner, and the
// engine stops before its next external call.
package etcdjournal

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/rotator"
)

// ErrNotOwner reports a journal write refused because this instance no
// longer holds the election key it won: another instance may own the
// policies now.
var ErrNotOwner = errors.New("this rekey instance no longer owns the journal (its etcd lease was lost)")

// DefaultOpTimeout bounds one etcd request, so that a lost quorum fails a
// step instead of blocking it.
const DefaultOpTimeout = 5 * time.Second

// Config is how to reach etcd.
type Config struct {
	Endpoints []string
	// Prefix is put before every key; it ends with "/".
	Prefix                    string
	CAFile, CertFile, KeyFile string
	DialTimeout               time.Duration
}

// Fence is the election key an instance won and its create revision.
type Fence struct {
	Key string
	Rev int64
}

// Journal is the etcd journal.
type Journal struct {
	cli       *clientv3.Client
	prefix    string
	own       bool
	opTimeout time.Duration

	mu    sync.Mutex
	fence *Fence
	// id, once set by RequireIdentity, is the journal id every fenced
	// read and write compares: a journal wiped or replaced in etcd is
	// never written as if it were this one.
	id string
}

var _ rotator.Journal = (*Journal)(nil)

// Dial returns a client for cfg. It does not contact the cluster.
func Dial(cfg Config) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd journal: no endpoints")
	}
	c := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(),
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("etcd journal: reading ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd journal: ca_file %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("etcd journal: loading cert_file and key_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.TLS = tc
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("etcd journal: %w", err)
	}
	return cli, nil
}

// Open dials etcd and returns a journal that closes its client on Close.
func Open(cfg Config) (*Journal, error) {
	cli, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	j := New(cli, cfg.Prefix)
	j.own = true
	return j, nil
}

// New returns a journal on cli under prefix; Close leaves cli open.
func New(cli *clientv3.Client, prefix string) *Journal {
	return &Journal{cli: cli, prefix: prefix, opTimeout: DefaultOpTimeout}
}

// Client returns the journal's etcd client.
func (j *Journal) Client() *clientv3.Client { return j.cli }

// Prefix returns the journal's key prefix.
func (j *Journal) Prefix() string { return j.prefix }

// SetFence makes every later Update conditional on f; nil removes the
// fence (a single instance, or a test).
func (j *Journal) SetFence(f *Fence) {
	j.mu.Lock()
	j.fence = f
	j.mu.Unlock()
}

// Standby refuses every later Update with ErrNotOwner (naming the owner)
// until SetFence: an instance that does not own the policies, or lost
// them, writes nothing.
func (j *Journal) Standby() { j.SetFence(&Fence{}) }

// RequireIdentity makes every later fenced read and write (every Update,
// and CheckOwner) conditional on the journal id in etcd being id; when it
// is not, they fail with rotator.ErrJournalLost.
func (j *Journal) RequireIdentity(id string) {
	j.mu.Lock()
	j.id = id
	j.mu.Unlock()
}

// CheckOwner reads the fence in etcd: nil while this instance still holds
// it, ErrNotOwner (naming the owner) once it does not. The daemon calls it
// right before every irreversible step.
func (j *Journal) CheckOwner(ctx context.Context) error {
	f := j.currentFence()
	if f == nil {
		return nil
	}
	if f.Key == "" {
		return j.notOwner(ctx)
	}
	ctx, cancel := j.op(ctx)
	defer cancel()
	r, err := j.cli.Txn(ctx).If(j.fenceCmp(f)...).Commit()
	if err != nil {
		return fmt.Errorf("checking ownership in etcd: %w", err)
	}
	if !r.Succeeded {
		return j.refused(ctx)
	}
	return nil
}

// refused says why a fenced transaction failed: the journal is not the
// one required (ErrJournalLost), or this instance does not own the
// policies (ErrNotOwner).
func (j *Journal) refused(ctx context.Context) error {
	if err := j.CheckIdentity(ctx); err != nil {
		return err
	}
	return j.notOwner(ctx)
}

// CheckIdentity reports rotator.ErrJournalLost when the journal id in
// etcd is no longer the one given to RequireIdentity: the journal was
// deleted or replaced. It returns nil when no identity is required or
// when etcd cannot be read (that is not a loss).
func (j *Journal) CheckIdentity(ctx context.Context) error {
	j.mu.Lock()
	want := j.id
	j.mu.Unlock()
	if want == "" {
		return nil
	}
	id, exists, err := j.Identity(ctx, false)
	switch {
	case err != nil:
		return nil
	case !exists:
		return fmt.Errorf("%w: the journal in etcd (prefix %s) was deleted while rekey was running", rotator.ErrJournalLost, j.prefix)
	case id != want:
		return fmt.Errorf("%w: the journal in etcd (prefix %s) was replaced while rekey was running: its id is %s, not %s", rotator.ErrJournalLost, j.prefix, id, want)
	}
	return nil
}

// notOwner is ErrNotOwner with the name of the owner, when one is known.
func (j *Journal) notOwner(ctx context.Context) error {
	owner, err := Owner(ctx, j.cli, j.prefix)
	switch {
	case err != nil:
		return fmt.Errorf("%w (the owner is unknown: %v)", ErrNotOwner, err)
	case owner == "":
		return fmt.Errorf("%w; no instance owns the policies at the moment", ErrNotOwner)
	}
	return fmt.Errorf("%w; instance %q owns the policies: run the command there", ErrNotOwner, owner)
}

func (j *Journal) currentFence() *Fence {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fence
}

func (j *Journal) key(policy string) string { return j.prefix + "policies/" + policy }

func (j *Journal) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, j.opTimeout)
}

// Get implements rotator.Journal (a linearizable read, not fenced).
func (j *Journal) Get(ctx context.Context, policy string) (rotator.PolicyState, bool, error) {
	ctx, cancel := j.op(ctx)
	defer cancel()
	r, err := j.cli.Get(ctx, j.key(policy))
	if err != nil {
		return rotator.PolicyState{}, false, fmt.Errorf("reading journal for %s from etcd: %w", policy, err)
	}
	if len(r.Kvs) == 0 {
		return rotator.PolicyState{}, false, nil
	}
	var st rotator.PolicyState
	if err := json.Unmarshal(r.Kvs[0].Value, &st); err != nil {
		return rotator.PolicyState{}, false, fmt.Errorf("reading journal for %s from etcd: %w: %v", policy, rotator.ErrJournalCorrupt, err)
	}
	return st, true, nil
}

// Update implements rotator.Journal. Its read and its write are both
// fenced; the write is also conditioned on the record not having changed
// since the read, and fn runs again on the newer record if it did.
func (j *Journal) Update(ctx context.Context, policy string, fn func(*rotator.PolicyState) error) (rotator.PolicyState, error) {
	key := j.key(policy)
	for attempt := 0; ; attempt++ {
		fence := j.currentFence()
		st, rev, err := j.fencedRead(ctx, key, policy, fence)
		if err != nil {
			return rotator.PolicyState{}, err
		}
		if err := fn(&st); err != nil {
			return rotator.PolicyState{}, err
		}
		v, err := json.Marshal(st)
		if err != nil {
			return rotator.PolicyState{}, err
		}
		cmps := append(j.fenceCmp(fence), clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		octx, cancel := j.op(ctx)
		r, err := j.cli.Txn(octx).If(cmps...).Then(clientv3.OpPut(key, string(v))).Commit()
		cancel()
		if err != nil {
			return rotator.PolicyState{}, fmt.Errorf("updating journal for %s in etcd (the write may or may not have taken effect): %w", policy, err)
		}
		if r.Succeeded {
			return st, nil
		}
		if err := j.CheckOwner(ctx); err != nil {
			return rotator.PolicyState{}, fmt.Errorf("updating journal for %s: %w", policy, err)
		}
		if attempt >= 20 {
			return rotator.PolicyState{}, fmt.Errorf("updating journal for %s in etcd: the record kept changing under 20 attempts", policy)
		}
	}
}

// fencedRead reads a policy's record in a transaction conditioned on the
// fence, and returns it with its mod revision (0 when absent).
func (j *Journal) fencedRead(ctx context.Context, key, policy string, fence *Fence) (rotator.PolicyState, int64, error) {
	ctx, cancel := j.op(ctx)
	defer cancel()
	if fence != nil && fence.Key == "" {
		return rotator.PolicyState{}, 0, fmt.Errorf("updating journal for %s: %w", policy, j.notOwner(ctx))
	}
	r, err := j.cli.Txn(ctx).If(j.fenceCmp(fence)...).Then(clientv3.OpGet(key)).Commit()
	if err != nil {
		return rotator.PolicyState{}, 0, fmt.Errorf("reading journal for %s from etcd: %w", policy, err)
	}
	if !r.Succeeded {
		return rotator.PolicyState{}, 0, fmt.Errorf("updating journal for %s: %w", policy, j.refused(ctx))
	}
	st := rotator.PolicyState{Policy: policy}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return st, 0, nil
	}
	if err := json.Unmarshal(kvs[0].Value, &st); err != nil {
		return rotator.PolicyState{}, 0, fmt.Errorf("reading journal for %s from etcd: %w: %v", policy, rotator.ErrJournalCorrupt, err)
	}
	return st, kvs[0].ModRevision, nil
}

// fenceCmp is the condition of a fenced transaction: f's election key
// unchanged and, once RequireIdentity was called, the journal id.
func (j *Journal) fenceCmp(f *Fence) []clientv3.Cmp {
	if f == nil {
		return nil
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)}
	j.mu.Lock()
	id := j.id
	j.mu.Unlock()
	if id != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(j.idKey()), "=", id))
	}
	return cmps
}

// List implements rotator.Journal: every policy, sorted by name.
func (j *Journal) List(ctx context.Context) ([]rotator.PolicyState, error) {
	ctx, cancel := j.op(ctx)
	defer cancel()
	p := j.prefix + "policies/"
	r, err := j.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("listing journal in etcd: %w", err)
	}
	out := make([]rotator.PolicyState, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		var st rotator.PolicyState
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("listing journal in etcd: the entry %q: %w: %v", strings.TrimPrefix(string(kv.Key), p), rotator.ErrJournalCorrupt, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// Close implements rotator.Journal; it closes the client when Open made
// it.
func (j *Journal) Close() error {
	if j.own {
		return j.cli.Close()
	}
	return nil
}

// idKey is where the journal's id is kept.
func (j *Journal) idKey() string { return j.prefix + "journal_id" }

// Identity returns the journal's id, stored under <prefix>journal_id when
// the journal was first used; with create, a journal without one gets one
// (atomically: of two instances creating it, both get the same id).
// exists is false when the prefix held no journal id.
func (j *Journal) Identity(ctx context.Context, create bool) (id string, exists bool, err error) {
	ctx, cancel := j.op(ctx)
	defer cancel()
	key := j.idKey()
	if !create {
		r, err := j.cli.Get(ctx, key)
		if err != nil {
			return "", false, fmt.Errorf("reading the journal id from etcd: %w", err)
		}
		if len(r.Kvs) == 0 {
			return "", false, nil
		}
		return string(r.Kvs[0].Value), true, nil
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	fresh := hex.EncodeToString(b[:])
	r, err := j.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fresh)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return "", false, fmt.Errorf("creating the journal id in etcd: %w", err)
	}
	if r.Succeeded {
		return fresh, false, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return "", false, errors.New("creating the journal id in etcd: it vanished while being read")
	}
	return string(kvs[0].Value), true, nil
}
