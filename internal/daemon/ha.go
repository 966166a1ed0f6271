package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
)

// ha is one instance of several sharing a journal in etcd. One election
// makes one instance the owner of every policy: the owner reconciles the
// journal and runs the scheduler under a context that ends when its lease
// is lost; the others wait in the election. Every journal write is fenced
// on the owner's election key, and every irreversible step first checks
// the fence in etcd (gate).
type ha struct {
	cfg     *policies.JournalSettings
	journal *etcdjournal.Journal
	log     zerolog.Logger

	leader     prometheus.Gauge
	leaseLoss  prometheus.Counter
	mu         sync.Mutex
	leadership *etcdjournal.Leadership
	owning     atomic.Bool
}

// openHA dials etcd and returns the shared journal in standby: it refuses
// writes until this instance wins the election.
func openHA(cfg *policies.JournalSettings, log zerolog.Logger) (*ha, error) {
	j, err := etcdjournal.Open(etcdjournal.Config{Endpoints: cfg.Endpoints, Prefix: cfg.Prefix, CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile})
	if err != nil {
		return nil, err
	}
	j.Standby()
	h := &ha{cfg: cfg, journal: j, log: log.With().Str("instance", cfg.Instance).Logger()}
	return h, nil
}

// register adds the HA metrics to m.
func (h *ha) register(m *metrics.Metrics) {
	hm := m.RegisterHA()
	h.leader, h.leaseLoss = hm.Leader, hm.LeaseLosses
}

// run campaigns, owns, loses and campaigns again until ctx ends. While it
// owns the policies it reconciles the journal (every unfinished rotation,
// whoever started it) and runs the scheduler, which rebuilds every
// policy's schedule from the journal.
func (h *ha) run(ctx context.Context, engine *rotator.Engine) error {
	defer h.resign()
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = time.Second
		l, err := h.join(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.log.Error().Err(err).Msg("NOT ACTING: cannot reach an etcd quorum to join the election; retrying")
			continue
		}
		h.log.Info().Msg("joined the election; waiting to own the policies")
		fence, err := l.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.log.Error().Err(err).Msg("NOT ACTING: the etcd session ended while waiting to own the policies; joining again")
			h.resign()
			continue
		}
		h.journal.SetFence(fence)
		h.owning.Store(true)
		h.leader.Set(1)
		h.log.Warn().Int64("fence_revision", fence.Rev).Msg("this instance owns the policies: reconciling the journal and scheduling")
		lost := h.own(ctx, engine, l)
		h.journal.Standby()
		h.owning.Store(false)
		h.leader.Set(0)
		if !lost {
			return nil
		}
		h.leaseLoss.Inc()
		h.log.Error().Msg("LOST OWNERSHIP: the etcd lease expired (etcd quorum lost, network partition or this process paused): stopped acting on every policy; rotations in flight are left to the next owner; joining the election again")
		h.resign()
	}
}

// own runs the engine until ctx ends (false) or the lease is lost (true).
func (h *ha) own(ctx context.Context, engine *rotator.Engine, l *etcdjournal.Leadership) bool {
	ownCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-l.Done():
			cancel()
		case <-ownCtx.Done():
		}
	}()
	if err := engine.Reconcile(ownCtx); err != nil {
		h.log.Error().Err(err).Msg("reconciling the journal")
	}
	if err := engine.Run(ownCtx); err != nil {
		h.log.Error().Err(err).Msg("scheduler stopped")
	}
	select {
	case <-l.Done():
		return ctx.Err() == nil
	default:
		return false
	}
}

// scope returns ctx, ended also when this instance loses the policies (its
// lease expires): a rotation asked through the control socket then stops
// before its next external call, like the scheduler's. On an instance that
// does not own the policies ctx is left as it is: the journal refuses the
// rotation's first write, naming the owner.
func (h *ha) scope(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	l := h.leadership
	h.mu.Unlock()
	if l == nil || !h.owning.Load() {
		return sctx, cancel
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-l.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	return sctx, func() {
		cancel()
		<-done
	}
}

func (h *ha) join(ctx context.Context) (*etcdjournal.Leadership, error) {
	l, err := etcdjournal.Join(ctx, h.journal.Client(), h.cfg.Prefix, h.cfg.Instance, h.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.leadership = l
	h.mu.Unlock()
	return l, nil
}

// resign gives up the election and the lease (so that another instance
// takes over at once on a clean stop).
func (h *ha) resign() {
	h.mu.Lock()
	l := h.leadership
	h.leadership = nil
	h.mu.Unlock()
	if l != nil {
		if err := l.Close(); err != nil && !errors.Is(err, context.Canceled) {
			h.log.Warn().Err(err).Msg("leaving the election (the lease expires by itself)")
		}
	}
}

// gate is the engine's synchronous audit recorder in HA mode: before an
// event reaches the audit log it checks in etcd that this instance still
// holds its fence, so that an irreversible step (commit, deactivate,
// revoke) is refused, before it acts, by an instance that lost its lease.
type gate struct {
	h   *ha
	aud *audit.Log
}

// Record implements rotator.AuditRecorder.
func (g gate) Record(ctx context.Context, e rotator.Event) error {
	if err := g.h.journal.CheckOwner(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("before recording %s of %s: %w", e.Step, e.Policy, err)
	}
	if g.aud == nil {
		return nil
	}
	return g.aud.Record(ctx, e)
}

// openJournal opens the configured journal: the embedded bbolt file in
// state_dir (bolt is set), or the shared etcd journal in standby (h is
// set).
func openJournal(cfg *policies.Config, auditPath string, log zerolog.Logger) (j rotator.Journal, bolt *rotator.BoltJournal, h *ha, err error) {
	if cfg.Journal == nil {
		bolt, err = rotator.OpenBoltJournal(cfg.StateDir, auditPath)
		if err != nil {
			return nil, nil, nil, err
		}
		return bolt, bolt, nil, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("creating state directory: %w", err)
	}
	h, err = openHA(cfg.Journal, log)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := checkIdentity(h.journal, cfg.StateDir, auditPath)
	if err != nil {
		h.journal.Close()
		return nil, nil, nil, err
	}
	h.journal.RequireIdentity(id)
	return h.journal, nil, h, nil
}

// EtcdMarker is the file in state_dir that holds the id of the etcd
// journal this instance used, so that a journal wiped or replaced in etcd
// is not taken for a first start.
const EtcdMarker = "etcd-journal.marker"

// checkIdentity compares the journal's id in etcd with the one this
// instance recorded, creates the id at a true first start, and records it.
func checkIdentity(j *etcdjournal.Journal, stateDir, auditPath string) (string, error) {
	ctx := context.Background()
	marker := filepath.Join(stateDir, EtcdMarker)
	where := fmt.Sprintf("the journal in etcd (prefix %s)", j.Prefix())
	b, err := os.ReadFile(marker)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", marker, err)
	}
	local := strings.TrimSpace(string(b))
	id, exists, err := j.Identity(ctx, false)
	if err != nil {
		return "", err
	}
	advice := "rekey refuses to start from scratch, which could orphan a new key or leave an old one unrevoked: restore etcd from a snapshot (etcdctl snapshot restore), or point prefix at the journal this instance used"
	switch {
	case local != "" && !exists:
		return "", fmt.Errorf("%w: %s is gone, but %s shows this instance used journal %s; %s", rotator.ErrJournalLost, where, marker, local, advice)
	case local != "" && id != local:
		return "", fmt.Errorf("%w: %s has the id %s, not %s recorded in %s: it was replaced; %s", rotator.ErrJournalLost, where, id, local, marker, advice)
	case local != "":
		return local, nil
	case !exists:
		if fi, err := os.Stat(auditPath); err == nil && fi.Size() > 0 {
			return "", fmt.Errorf("%w: %s is empty, but %s shows rotations ran here before; %s", rotator.ErrJournalLost, where, auditPath, advice)
		}
		if id, _, err = j.Identity(ctx, true); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(marker, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", marker, err)
	}
	return id, nil
}

// journalChanged reports whether a reload changes the journal settings,
// which only a restart may do.
func journalChanged(a, b *policies.JournalSettings) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, y := *a, *b
	x.DefRange, y.DefRange = hcl.Range{}, hcl.Range{}
	return !reflect.DeepEqual(x, y)
}

// aliveFunc is what the watchdog and /readyz ask: the engine's scheduler
// loop turning, except on a standby instance (h set, not owning), which
// runs no scheduler and is alive while it waits in the election. h may be
// nil (the embedded journal).
func (h *ha) aliveFunc(engine *rotator.Engine) func() bool {
	if h == nil {
		return engine.Alive
	}
	return func() bool { return !h.owning.Load() || engine.Alive() }
}
