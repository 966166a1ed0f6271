package metrics

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// LabelsMetric is the name of the info metric that carries each policy's
// labels: rekey_policy_labels{policy="payments", label_env="prod"} 1.
// Join it to another metric to select by label, for example
// `rekey_policy_stuck * on(policy) group_left(label_env) rekey_policy_labels`.
const LabelsMetric = "rekey_policy_labels"

// labelsCollector exports LabelsMetric. Policies carry different label
// names, so the collector is unchecked (it describes nothing).
type labelsCollector struct{ m *Metrics }

func (labelsCollector) Describe(chan<- *prometheus.Desc) {}

func (c labelsCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	var policies []string
	for p, s := range m.policies {
		if len(s.labels) > 0 {
			policies = append(policies, p)
		}
	}
	sort.Strings(policies)
	type row struct {
		names, values []string
	}
	rows := make([]row, len(policies))
	for i, p := range policies {
		r := row{names: []string{"policy"}, values: []string{p}}
		labels := m.policies[p].labels
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r.names = append(r.names, "label_"+promName(k))
			r.values = append(r.values, labels[k])
		}
		rows[i] = r
	}
	m.mu.Unlock()
	for _, r := range rows {
		desc := prometheus.NewDesc(LabelsMetric, "Always 1; the labels are the policy's labels (label_NAME), for selecting policies in queries.", r.names, nil)
		if metric, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, 1, r.values...); err == nil {
			ch <- metric
		}
	}
}

// promName makes a label name a valid Prometheus label name ('.' and '-'
// become '_').
func promName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' {
			return '_'
		}
		return r
	}, s)
}
