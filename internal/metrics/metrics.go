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
//
// The per-policy series are not kept as Prometheus vectors (a dozen
// allocations per series, about 2.8 KB per policy): each policy has one
// small record, and policyCollector builds the series at scrape time.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	stepDuration *prometheus.HistogramVec
	reloadOK     prometheus.Gauge
	journalOK    prometheus.Gauge
	reloadTime   prometheus.Gauge
	buildInfo    *prometheus.GaugeVec
	notifyFailed *prometheus.CounterVec

	mu       sync.Mutex
	policies map[string]*policySeries
}

// policySeries is what the per-policy series of one policy export.
type policySeries struct {
	// has says which series exist (has* bits).
	has                                      uint16
	next, lastSuccess, maxAge, expiry, stuck float64
	alert                                    float64
	rotations                                [len(resultIndex)]float64
	keyCreated                               time.Time
	kind                                     string
	labels                                   map[string]string
}

const (
	hasNext uint16 = 1 << iota
	hasLastSuccess
	hasMaxAge
	hasExpiry
	hasStuck
	hasAlert
	hasKeyCreated
	// hasRotations is the bit of Results[0]; Results[i] is hasRotations<<i.
	hasRotations
)

// resultIndex maps Results to their index in policySeries.rotations.
var resultIndex = [...]string{ResultSuccess, ResultFailed, ResultRolledBack, ResultReactivated}

var (
	descLastSuccess = prometheus.NewDesc("rekey_rotation_last_success_timestamp_seconds",
		"Unix time at which the policy's last rotation completed.", []string{"policy"}, nil)
	descNext = prometheus.NewDesc("rekey_rotation_next_timestamp_seconds",
		"Unix time at which the policy is next due for rotation.", []string{"policy"}, nil)
	descMaxAge = prometheus.NewDesc("rekey_key_max_age_seconds",
		"The policy's max_age: a key older than this is overdue.", []string{"policy"}, nil)
	descExpiry = prometheus.NewDesc("rekey_key_expiry_timestamp_seconds",
		"Unix time at which the key the policy currently serves expires at its provider; absent for keys that do not expire.", []string{"policy"}, nil)
	descStuck = prometheus.NewDesc("rekey_policy_stuck",
		"1 if the policy spent its failure budget and waits for an operator (rekey rotate), else 0.", []string{"policy"}, nil)
	descAlert = prometheus.NewDesc("rekey_policy_alert",
		"1 if dependents failed after the policy's old key was revoked (revoke.watch; revocation cannot be undone), until a later rotation commits; else 0.", []string{"policy"}, nil)
	descRotations = prometheus.NewDesc("rekey_rotations_total",
		"Rotations that ended, by policy and result (success, failed, rolled_back, reactivated).", []string{"policy", "result"}, nil)
	descKeyAge = prometheus.NewDesc("rekey_key_age_seconds",
		"Age of the key the policy currently serves, computed at scrape time.", []string{"policy"}, nil)
)

var _ rotator.Observer = (*Metrics)(nil)

// New returns the metrics of a daemon of the given version, registered in
// a new registry together with the Go runtime and process collectors.
func New(version string) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		now:      time.Now,
		policies: map[string]*policySeries{},
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
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(
		m.stepDuration, m.reloadOK, m.journalOK, m.reloadTime, m.buildInfo, m.notifyFailed,
		policyCollector{m}, labelsCollector{m},
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
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.policy(e.Policy)
	switch {
	case e.Step == rotator.StepDone && e.Result == rotator.ResultOK:
		p.count(0)
		p.set(hasLastSuccess, &p.lastSuccess, unix(e.Time))
		p.set(hasStuck, &p.stuck, 0)
	case e.Step == rotator.StepRolledBack || e.Result == rotator.ResultRolledBack:
		p.count(2)
	case e.Step == rotator.StepFailed:
		p.count(1)
	case e.Result == rotator.ResultReactivated:
		p.count(3)
	}
	if e.Result == rotator.ResultStuck {
		p.set(hasStuck, &p.stuck, 1)
	}
	switch {
	case e.Step == rotator.StepWatch && e.Result == rotator.ResultFailed:
		p.set(hasAlert, &p.alert, 1)
	case e.Step == rotator.StepCommit && e.Result == rotator.ResultOK:
		p.set(hasAlert, &p.alert, 0)
	}
}

// policy returns the record of a policy, creating it; m.mu is held.
func (m *Metrics) policy(name string) *policySeries {
	p := m.policies[name]
	if p == nil {
		p = &policySeries{}
		m.policies[name] = p
	}
	return p
}

func (p *policySeries) set(bit uint16, field *float64, v float64) {
	p.has |= bit
	*field = v
}

func (p *policySeries) count(result int) {
	p.has |= hasRotations << result
	p.rotations[result]++
}

func (m *Metrics) kind(policy string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.policies[policy]; p != nil && p.kind != "" {
		return p.kind
	}
	return "unknown"
}

// SetPolicyState sets the policy's schedule and key gauges. The engine
// calls it for every policy at start, after each reload, and whenever a
// policy's next due time, key or stuck state changes.
func (m *Metrics) SetPolicyState(policy string, s PolicyState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.policy(policy)
	setOrDelete(p, hasNext, &p.next, s.Next)
	setOrDelete(p, hasExpiry, &p.expiry, s.KeyExpires)
	if !s.LastSuccess.IsZero() {
		p.set(hasLastSuccess, &p.lastSuccess, unix(s.LastSuccess))
	}
	if s.MaxAge > 0 {
		p.set(hasMaxAge, &p.maxAge, s.MaxAge.Seconds())
	} else {
		p.has &^= hasMaxAge
	}
	p.set(hasStuck, &p.stuck, b2f(s.Stuck))
	p.set(hasAlert, &p.alert, b2f(s.Alert))
	for i := range resultIndex {
		p.has |= hasRotations << i
	}
	if s.KeyCreated.IsZero() {
		p.has &^= hasKeyCreated
	} else {
		p.has |= hasKeyCreated
		p.keyCreated = s.KeyCreated
	}
	p.kind = s.ProviderKind
	if len(s.Labels) == 0 {
		p.labels = nil
	} else {
		p.labels = s.Labels
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RemovePolicy drops every series of a policy that a reload removed.
func (m *Metrics) RemovePolicy(policy string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.policies, policy)
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

func setOrDelete(p *policySeries, bit uint16, field *float64, t time.Time) {
	if t.IsZero() {
		p.has &^= bit
		return
	}
	p.set(bit, field, unix(t))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// policyCollector exports the per-policy series from the policies'
// records; rekey_key_age_seconds is computed at scrape time.
type policyCollector struct{ m *Metrics }

func (policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastSuccess, descNext, descMaxAge, descExpiry, descStuck, descAlert, descRotations, descKeyAge} {
		ch <- d
	}
}

func (c policyCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	now := m.now()
	names := make([]string, 0, len(m.policies))
	for name := range m.policies {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]prometheus.Metric, 0, len(names)*10)
	gauge := func(p *policySeries, bit uint16, d *prometheus.Desc, v float64, name string) {
		if p.has&bit != 0 {
			out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name))
		}
	}
	for _, name := range names {
		p := m.policies[name]
		gauge(p, hasLastSuccess, descLastSuccess, p.lastSuccess, name)
		gauge(p, hasNext, descNext, p.next, name)
		gauge(p, hasMaxAge, descMaxAge, p.maxAge, name)
		gauge(p, hasExpiry, descExpiry, p.expiry, name)
		gauge(p, hasStuck, descStuck, p.stuck, name)
		gauge(p, hasAlert, descAlert, p.alert, name)
		gauge(p, hasKeyCreated, descKeyAge, now.Sub(p.keyCreated).Seconds(), name)
		for i, r := range resultIndex {
			if p.has&(hasRotations<<i) != 0 {
				out = append(out, prometheus.MustNewConstMetric(descRotations, prometheus.CounterValue, p.rotations[i], name, r))
			}
		}
	}
	m.mu.Unlock()
	for _, metric := range out {
		ch <- metric
	}
}
