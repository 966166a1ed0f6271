package metrics

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

const canaryKeyID = "AKIACANARYKEYID7X9Q"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// scrape serves m over a real HTTP server and returns the body.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing scrape: %v", err)
	}
	return fams
}

// value returns the value of the series of family name with the given
// labels; ok is false if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func rotation(policy string, steps ...rotator.Step) []rotator.Event {
	var evs []rotator.Event
	for i, s := range steps {
		for _, r := range []rotator.Result{rotator.ResultStarted, rotator.ResultOK} {
			e := rotator.Event{
				Time: now.Add(time.Duration(i) * time.Minute), Policy: policy, RotationID: "rot-1",
				Step: s, Result: r, NewKeyID: secret.Mask(canaryKeyID), OldKeyID: canaryKeyID,
			}
			if r == rotator.ResultOK {
				e.Duration = 2 * time.Second
			}
			evs = append(evs, e)
		}
	}
	return evs
}

func populated(t *testing.T) *Metrics {
	t.Helper()
	m := New("1.2.3")
	m.now = func() time.Time { return now }
	m.SetPolicyState("payments", PolicyState{
		ProviderKind: "aws_iam",
		Next:         now.Add(30 * 24 * time.Hour),
		KeyCreated:   now.Add(-10 * 24 * time.Hour),
		MaxAge:       90 * 24 * time.Hour,
		KeyExpires:   now.Add(20 * 24 * time.Hour),
		Labels:       map[string]string{"env": "prod", "cost-center": "42"},
		LastSuccess:  now.Add(-10 * 24 * time.Hour),
	})
	m.SetPolicyState("billing-db", PolicyState{ProviderKind: "postgres", Next: now.Add(-2 * time.Hour)})
	ctx := context.Background()
	for _, e := range rotation("payments", rotator.StepCreate, rotator.StepStage, rotator.StepDone) {
		m.Observe(ctx, e)
	}
	fail := rotator.Event{Time: now, Policy: "billing-db", Step: rotator.StepTest, Result: rotator.ResultFailed, Duration: 90 * time.Second, Error: "probe failed", NewKeyID: canaryKeyID}
	m.Observe(ctx, fail)
	m.Observe(ctx, rotator.Event{Time: now, Policy: "billing-db", Step: rotator.StepRolledBack, Result: rotator.ResultRolledBack})
	m.Observe(ctx, rotator.Event{Time: now, Policy: "billing-db", Step: rotator.StepFailed, Result: rotator.ResultStuck})
	m.ConfigLoaded(true, now.Add(-time.Hour))
	m.ConfigLoaded(false, now)
	m.NotificationFailed("webhook")
	return m
}

func TestScrape(t *testing.T) {
	t.Parallel()
	m := populated(t)
	body := scrape(t, m)
	fams := parse(t, body)

	day := 24 * time.Hour
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"key age computed at scrape", "rekey_key_age_seconds", map[string]string{"policy": "payments"}, (10 * day).Seconds()},
		{"max age", "rekey_key_max_age_seconds", map[string]string{"policy": "payments"}, (90 * day).Seconds()},
		{"next due", "rekey_rotation_next_timestamp_seconds", map[string]string{"policy": "payments"}, unix(now.Add(30 * day))},
		{"last success from the done event", "rekey_rotation_last_success_timestamp_seconds", map[string]string{"policy": "payments"}, unix(now.Add(2 * time.Minute))},
		{"success counted", "rekey_rotations_total", map[string]string{"policy": "payments", "result": "success"}, 1},
		{"other results start at zero", "rekey_rotations_total", map[string]string{"policy": "payments", "result": "rolled_back"}, 0},
		{"rollback counted", "rekey_rotations_total", map[string]string{"policy": "billing-db", "result": "rolled_back"}, 1},
		{"failed (stuck) counted", "rekey_rotations_total", map[string]string{"policy": "billing-db", "result": "failed"}, 1},
		{"stuck", "rekey_policy_stuck", map[string]string{"policy": "billing-db"}, 1},
		{"not stuck", "rekey_policy_stuck", map[string]string{"policy": "payments"}, 0},
		{"step durations by provider kind", "rekey_rotation_step_duration_seconds", map[string]string{"step": "create", "kind": "aws_iam"}, 1},
		{"failed step duration", "rekey_rotation_step_duration_seconds", map[string]string{"step": "test", "kind": "postgres"}, 1},
		{"reload failed", "rekey_config_last_reload_successful", nil, 0},
		{"last good reload kept", "rekey_config_last_reload_success_timestamp_seconds", nil, unix(now.Add(-time.Hour))},
		{"build info", "rekey_build_info", map[string]string{"version": "1.2.3"}, 1},
		{"notification failures", "rekey_notifications_failed_total", map[string]string{"kind": "webhook"}, 1},
	}
	for _, tt := range tests {
		got, ok := value(fams, tt.metric, tt.labels)
		if !ok {
			t.Errorf("%s: no series %s%v", tt.name, tt.metric, tt.labels)
			continue
		}
		if math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("%s: %s%v = %v, want %v", tt.name, tt.metric, tt.labels, got, tt.want)
		}
	}
	if _, ok := value(fams, "rekey_key_age_seconds", map[string]string{"policy": "billing-db"}); ok {
		t.Error("key age exported for a policy whose key creation time is unknown")
	}
	for _, leak := range []string{canaryKeyID, secret.Mask(canaryKeyID), canaryKeyID[len(canaryKeyID)-4:], "probe failed"} {
		if strings.Contains(body, leak) {
			t.Errorf("scrape contains %q", leak)
		}
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	body := scrape(t, populated(t))
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestRemovePolicy(t *testing.T) {
	t.Parallel()
	m := populated(t)
	m.RemovePolicy("payments")
	body := scrape(t, m)
	if strings.Contains(body, `policy="payments"`) {
		t.Errorf("series of a removed policy remain:\n%s", grep(body, `policy="payments"`))
	}
	if !strings.Contains(body, `policy="billing-db"`) {
		t.Error("series of another policy were removed")
	}
}

func TestClearingStateRemovesSeries(t *testing.T) {
	t.Parallel()
	m := populated(t)
	m.SetPolicyState("payments", PolicyState{ProviderKind: "aws_iam", Stuck: true})
	fams := parse(t, scrape(t, m))
	for _, name := range []string{"rekey_rotation_next_timestamp_seconds", "rekey_key_max_age_seconds", "rekey_key_age_seconds"} {
		if _, ok := value(fams, name, map[string]string{"policy": "payments"}); ok {
			t.Errorf("%s still exported after the state was cleared", name)
		}
	}
	if v, _ := value(fams, "rekey_policy_stuck", map[string]string{"policy": "payments"}); v != 1 {
		t.Errorf("stuck = %v", v)
	}
}

func TestOwnRegistry(t *testing.T) {
	t.Parallel()
	a, b := New("a"), New("b")
	if a.Registry() == b.Registry() {
		t.Fatal("two Metrics share a registry")
	}
	a.NotificationFailed("exec")
	if strings.Contains(scrape(t, b), "rekey_notifications_failed_total{") {
		t.Error("a counter of one instance shows up in the other")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
