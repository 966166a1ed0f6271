package daemon

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/notifiers/dispatch"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// notifications is the running notifier dispatcher and its engine handle.
type notifications struct {
	d      *dispatch.Dispatcher
	remove func()
}

func newNotifications(ctx context.Context, cfg *policies.Config, e *rotator.Engine, m *metrics.Metrics, log zerolog.Logger) *notifications {
	var routes []dispatch.Route
	for _, p := range cfg.Policies {
		for _, nb := range p.Notify {
			routes = append(routes, dispatch.Route{Policy: p.Name, Kind: nb.Kind, On: nb.On, Notifier: nb.Notifier})
		}
	}
	d := dispatch.New(routes, dispatch.Options{
		OnDrop: m.NotificationFailed,
		OnFailure: func(kind string, msg notifiers.Message, err error) {
			log.Error().Err(err).Str("notifier", kind).Str("policy", msg.Policy).Str("event", msg.Event).Msg("notification not delivered")
			m.NotificationFailed(kind)
		},
	})
	d.Start(ctx)
	return &notifications{d: d, remove: e.AddObserver(d)}
}

// swap starts the dispatcher of a new configuration, then retires the old
// one (which delivers what it has queued).
func (n *notifications) swap(ctx context.Context, cfg *policies.Config, e *rotator.Engine, m *metrics.Metrics, log zerolog.Logger) *notifications {
	next := newNotifications(ctx, cfg, e, m, log)
	n.close()
	return next
}

func (n *notifications) close() {
	n.remove()
	n.d.Close()
}
