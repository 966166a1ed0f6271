package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/rotator"
)

// httpServer serves /metrics, /healthz (the process answers) and /readyz
// (the journal is reconciled, still the file that was opened, and the
// scheduler loop turns).
type httpServer struct {
	metrics *metrics.Metrics
	engine  *rotator.Engine
	ready   *atomic.Bool
	lost    *atomic.Pointer[error]
	log     zerolog.Logger
	// alive reports the scheduler loop turning (engine.Alive); with a
	// shared journal a standby instance, which runs no scheduler, is alive
	// too.
	alive func() bool
}

func (h *httpServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if p := h.lost.Load(); p != nil {
			http.Error(w, "not ready: journal lost: "+(*p).Error(), http.StatusServiceUnavailable)
			return
		}
		if !h.ready.Load() || !h.alive() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func (h *httpServer) serve(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			h.log.Error().Err(err).Msg("metrics server stopped")
		}
	}
}
