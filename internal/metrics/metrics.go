// Package metrics exposes rekey's Prometheus metrics: rotation outcomes
// and step durations counted from engine events, per-policy schedule and
// key-age gauges set by the engine, configuration reload status, build
// information and notification failures.
//
// Metrics live in their own registry (never the global one). Labels carry
// policy names, step names, plugin kinds and result names only: no key
// id, masked or not, and no secret ever becomes a label or a value.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rekeyhq/rekey/rotator"
)

// Values of the result label of rekey_rotations_total.
const (
	ResultSuccess     = "success"
	ResultFailed      = "failed"
	ResultRolledBack  = "rolled_back"
	ResultReactivated = "reactivated"
)

// Results lists the values of the result label, all of which are exported
// (as zero) for every known policy so that rate() and increase() work from
// the first rotation on.
var Results = []string{ResultSuccess, ResultFailed, ResultRolledBack, ResultReactivated}

// StepDurationBuckets span quick API calls to day-long soak periods.
var StepDurationBuckets = []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600}

// PolicyState is what the engine knows about a policy between rotations.
// Zero times and durations mean "unknown" or "not configured": the
// corresponding series is removed rather than exported as 0.
type PolicyState struct {
	// ProviderKind is the policy's provider kind (e.g. "aws_iam"), the kind
	// label of rekey_rotation_step_duration_seconds.
	ProviderKind string
	// Next is when the policy is next due.
	Next time.Time
	// KeyCreated is when the key currently served was created.
	KeyCreated time.Time
	// MaxAge is the policy's max_age: a key older than this is overdue.
	MaxAge time.Duration
	// KeyExpires is when the key currently served expires at its
	// provider (zero: never, or unknown).
	KeyExpires time.Time
	// Labels are the policy's labels, exported by rekey_policy_labels.
	Labels map[string]string
	// LastSuccess is when the last rotation completed, from the journal,
	// so that the gauge survives a restart.
	LastSuccess time.Time
	// Stuck is true when the failure budget is spent and the policy waits
	// for an operator.
	Stuck bool
	// Alert is true when dependents failed after the old key was revoked
	// (revoke.watch).
	Alert bool
}

// Metrics holds rekey's collectors and their registry. The zero value is
// not usable; call New. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	lastSuccess   *prometheus.GaugeVec
	next          *prometheus.GaugeVec
	keyMaxAge     *prometheus.GaugeVec
	keyExpiry     *prometheus.GaugeVec
	stuck         *prometheus.GaugeVec
	alert         *prometheus.GaugeVec
	rotations     *prometheus.CounterVec
	stepDuration  *prometheus.HistogramVec
	reloadOK      prometheus.Gauge
	journalOK     prometheus.Gauge
	reloadTime    prometheus.Gauge
	buildInfo     *prometheus.GaugeVec
	notifyFailed  *prometheus.CounterVec
	keyAgeDesc    *prometheus.Desc
	mu            sync.Mutex
	keyCreated    map[string]time.Time
	providerKinds map[string]string
	labels        map[string]map[string]string
}

var _ rotator.Observer = (*Metrics)(nil)

// New returns the metrics of a daemon of the given version, registered in
// a new registry together with the Go runtime and process collectors.
func New(version string) *Metrics {
	m := &Metrics{
		reg:           prometheus.NewRegistry(),
		now:           time.Now,
		keyCreated:    map[string]time.Time{},
		providerKinds: map[string]string{},
		labels:        map[string]map[string]string{},
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_rotation_last_success_timestamp_seconds",
			Help: "Unix time at which the policy's last rotation completed.",
		}, []string{"policy"}),
		next: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_rotation_next_timestamp_seconds",
			Help: "Unix time at which the policy is next due for rotation.",
		}, []string{"policy"}),
		keyMaxAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_key_max_age_seconds",
			Help: "The policy's max_age: a key older than this is overdue.",
		}, []string{"policy"}),
		keyExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_key_expiry_timestamp_seconds",
			Help: "Unix time at which the key the policy currently serves expires at its provider; absent for keys that do not expire.",
		}, []string{"policy"}),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_policy_stuck",
			Help: "1 if the policy spent its failure budget and waits for an operator (rekey rotate), else 0.",
		}, []string{"policy"}),
		alert: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_policy_alert",
			Help: "1 if dependents failed after the policy's old key was revoked (revoke.watch; revocation cannot be undone), until a later rotation commits; else 0.",
		}, []string{"policy"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rekey_rotations_total",
			Help: "Rotations that ended, by policy and result (success, failed, rolled_back, reactivated).",
		}, []string{"policy", "result"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rekey_rotation_step_duration_seconds",
			Help:    "Duration of rotation steps, by step and provider kind.",
			Buckets: StepDurationBuckets,
		}, []string{"step", "kind"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rekey_config_last_reload_successful",
			Help: "1 if the last configuration load or reload succeeded, else 0.",
		}),
		journalOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rekey_journal_ok",
			Help: "1 while the journal file is the one the daemon opened; 0 once it was deleted or replaced (scheduling stopped).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rekey_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load or reload.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_build_info",
			Help: "Always 1; labels give the rekey version and the Go version it was built with.",
		}, []string{"version", "goversion"}),
		notifyFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rekey_notifications_failed_total",
			Help: "Notifications not delivered, by notifier kind: failed after every retry, or dropped because the queue was full.",
		}, []string{"kind"}),
		keyAgeDesc: prometheus.NewDesc("rekey_key_age_seconds",
			"Age of the key the policy currently serves, computed at scrape time.", []string{"policy"}, nil),
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(
		m.lastSuccess, m.next, m.keyMaxAge, m.keyExpiry, m.stuck, m.alert, m.rotations, m.stepDuration,
		m.reloadOK, m.journalOK, m.reloadTime, m.buildInfo, m.notifyFailed, keyAgeCollector{m}, labelsCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.journalOK.Set(1)
	return m
}

// Registry returns the registry, for collectors added by the daemon.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats. A
// collector that fails is reported in the logs of the scrape, not as a
// failed scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Observe counts rotations and step durations from engine events.
func (m *Metrics) Observe(_ context.Context, e rotator.Event) {
	if e.Duration > 0 && e.Result != rotator.ResultStarted {
		m.stepDuration.WithLabelValues(string(e.Step), m.kind(e.Policy)).Observe(e.Duration.Seconds())
	}
	switch {
	case e.Step == rotator.StepDone && e.Result == rotator.ResultOK:
		m.rotations.WithLabelValues(e.Policy, ResultSuccess).Inc()
		m.lastSuccess.WithLabelValues(e.Policy).Set(unix(e.Time))
		m.stuck.WithLabelValues(e.Policy).Set(0)
	case e.Step == rotator.StepRolledBack || e.Result == rotator.ResultRolledBack:
		m.rotations.WithLabelValues(e.Policy, ResultRolledBack).Inc()
	case e.Step == rotator.StepFailed:
		m.rotations.WithLabelValues(e.Policy, ResultFailed).Inc()
	case e.Result == rotator.ResultReactivated:
		m.rotations.WithLabelValues(e.Policy, ResultReactivated).Inc()
	}
	if e.Result == rotator.ResultStuck {
		m.stuck.WithLabelValues(e.Policy).Set(1)
	}
	switch {
	case e.Step == rotator.StepWatch && e.Result == rotator.ResultFailed:
		m.alert.WithLabelValues(e.Policy).Set(1)
	case e.Step == rotator.StepCommit && e.Result == rotator.ResultOK:
		m.alert.WithLabelValues(e.Policy).Set(0)
	}
}

func (m *Metrics) kind(policy string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.providerKinds[policy]; k != "" {
		return k
	}
	return "unknown"
}

// SetPolicyState sets the policy's schedule and key gauges. The engine
// calls it for every policy at start, after each reload, and whenever a
// policy's next due time, key or stuck state changes.
func (m *Metrics) SetPolicyState(policy string, s PolicyState) {
	setOrDelete(m.next, policy, s.Next)
	setOrDelete(m.keyExpiry, policy, s.KeyExpires)
	if !s.LastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(policy).Set(unix(s.LastSuccess))
	}
	if s.MaxAge > 0 {
		m.keyMaxAge.WithLabelValues(policy).Set(s.MaxAge.Seconds())
	} else {
		m.keyMaxAge.DeleteLabelValues(policy)
	}
	if s.Stuck {
		m.stuck.WithLabelValues(policy).Set(1)
	} else {
		m.stuck.WithLabelValues(policy).Set(0)
	}
	if s.Alert {
		m.alert.WithLabelValues(policy).Set(1)
	} else {
		m.alert.WithLabelValues(policy).Set(0)
	}
	for _, r := range Results {
		m.rotations.WithLabelValues(policy, r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.KeyCreated.IsZero() {
		delete(m.keyCreated, policy)
	} else {
		m.keyCreated[policy] = s.KeyCreated
	}
	m.providerKinds[policy] = s.ProviderKind
	if len(s.Labels) == 0 {
		delete(m.labels, policy)
	} else {
		m.labels[policy] = s.Labels
	}
}

// RemovePolicy drops every series of a policy that a reload removed.
func (m *Metrics) RemovePolicy(policy string) {
	for _, v := range []*prometheus.GaugeVec{m.next, m.lastSuccess, m.keyMaxAge, m.keyExpiry, m.stuck, m.alert} {
		v.DeleteLabelValues(policy)
	}
	m.rotations.DeletePartialMatch(prometheus.Labels{"policy": policy})
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keyCreated, policy)
	delete(m.providerKinds, policy)
	delete(m.labels, policy)
}

// ConfigLoaded records the outcome of a configuration load or reload at
// time at.
func (m *Metrics) ConfigLoaded(ok bool, at time.Time) {
	if !ok {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadTime.Set(unix(at))
}

// JournalOK records whether the journal file is still the one the daemon
// opened.
func (m *Metrics) JournalOK(ok bool) {
	if ok {
		m.journalOK.Set(1)
		return
	}
	m.journalOK.Set(0)
}

// NotificationFailed counts a notification of the given notifier kind
// that was not delivered. It fits notifiers' dispatcher callbacks.
func (m *Metrics) NotificationFailed(kind string) {
	m.notifyFailed.WithLabelValues(kind).Inc()
}

func setOrDelete(v *prometheus.GaugeVec, policy string, t time.Time) {
	if t.IsZero() {
		v.DeleteLabelValues(policy)
		return
	}
	v.WithLabelValues(policy).Set(unix(t))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// keyAgeCollector computes rekey_key_age_seconds at scrape time.
type keyAgeCollector struct{ m *Metrics }

func (c keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.keyAgeDesc }

func (c keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	now := m.now()
	policies := make([]string, 0, len(m.keyCreated))
	for p := range m.keyCreated {
		policies = append(policies, p)
	}
	sort.Strings(policies)
	ages := make([]float64, len(policies))
	for i, p := range policies {
		ages[i] = now.Sub(m.keyCreated[p]).Seconds()
	}
	m.mu.Unlock()
	for i, p := range policies {
		ch <- prometheus.MustNewConstMetric(m.keyAgeDesc, prometheus.GaugeValue, ages[i], p)
	}
}
