package daemon

import (
	"context"
	"errors"
	"sync"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// generation is one loaded configuration and the background work of its
// connections (token renewal). It is closed once it is replaced and no
// rotation uses its policies any more, or at shutdown.
type generation struct {
	cfg    *policies.Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// generations owns every configuration generation of a daemon: the
// current one and those replaced whose rotations have not finished.
type generations struct {
	engine *rotator.Engine
	log    zerolog.Logger

	mu      sync.Mutex
	current *generation
	old     []*generation
	retire  sync.WaitGroup
}

// start starts the connections of cfg, which becomes the current
// generation.
func (g *generations) start(ctx context.Context, cfg *policies.Config) {
	ctx, cancel := context.WithCancel(ctx)
	gen := &generation{cfg: cfg, cancel: cancel}
	for _, c := range cfg.Connections.All() {
		s, ok := c.(plugin.Starter)
		if !ok {
			continue
		}
		gen.wg.Add(1)
		go func() {
			defer gen.wg.Done()
			if err := s.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
				g.log.Error().Err(err).Msg("connection stopped")
			}
		}()
	}
	g.mu.Lock()
	if g.current != nil {
		g.old = append(g.old, g.current)
	}
	g.current = gen
	g.mu.Unlock()
}

// retireOld closes, in the background, every generation other than the
// current one as soon as no rotation uses its policies. Call it after the
// engine's SetPolicies switched to the current generation.
func (g *generations) retireOld(current *policies.Config) {
	g.mu.Lock()
	old := g.old
	g.old = nil
	g.mu.Unlock()
	for _, gen := range old {
		g.retire.Add(1)
		go func() {
			defer g.retire.Done()
			_ = g.engine.WaitUnused(context.Background(), gen.cfg.Policies)
			gen.close(g.log)
		}()
	}
}

// closeAll waits for the generations being retired and closes the
// current one. The daemon calls it once every rotation has returned.
func (g *generations) closeAll() {
	g.retireOld(nil)
	g.retire.Wait()
	g.mu.Lock()
	cur := g.current
	g.current = nil
	g.mu.Unlock()
	if cur != nil {
		cur.close(g.log)
	}
}

func (gen *generation) close(log zerolog.Logger) {
	gen.cancel()
	gen.wg.Wait()
	if err := gen.cfg.Connections.Close(); err != nil {
		log.Warn().Err(err).Msg("closing connections")
	}
}
