package metrics

import "github.com/prometheus/client_golang/prometheus"

// HA are the metrics of an instance that shares its journal with others
// (journal "etcd"): whether it owns the policies, and how often it lost
// its lease while it did.
type HA struct {
	Leader      prometheus.Gauge
	LeaseLosses prometheus.Counter
}

// RegisterHA registers the HA metrics; the daemon calls it only with a
// shared journal.
func (m *Metrics) RegisterHA() *HA {
	h := &HA{
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rekey_ha_leader",
			Help: "1 while this instance owns the policies of the shared journal (journal \"etcd\"), 0 otherwise."}),
		LeaseLosses: prometheus.NewCounter(prometheus.CounterOpts{Name: "rekey_ha_lease_losses_total",
			Help: "Times this instance lost its etcd lease while it owned the policies, and stopped acting."}),
	}
	m.reg.MustRegister(h.Leader, h.LeaseLosses)
	return h
}
