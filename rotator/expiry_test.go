package rotator

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/policies"
)

// TestDecideExpiry: a key that expires is due expiry_lead before its
// expiry, regardless of the window; after failures the backoff holds it
// back, but never past half the time left; an expired key is the loudest
// decision. The clock is injected (now).
func TestDecideExpiry(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	closed := &policies.Window{Expr: "Mon 09:00-10:00 Europe/Berlin", Days: [7]bool{false, true}, Start: 9 * time.Hour, End: 10 * time.Hour, Location: berlin}
	day := 24 * time.Hour
	created := mustTime("2026-01-01T00:00:00Z") // a Thursday
	expires := created.Add(8 * day)             // lifetime 8d: 25% is 2d
	quarter := policies.Schedule{Every: 30 * day, ExpiryLead: policies.ExpiryLead{Fraction: 0.25}}
	fixed := policies.Schedule{Every: 30 * day, ExpiryLead: policies.ExpiryLead{Duration: 6 * time.Hour}}
	windowed := quarter
	windowed.Window = closed
	st := PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created, CurrentKeyExpires: expires}
	failed := st
	failed.Failures, failed.LastAttempt, failed.NotBefore = 2, expires.Add(-40*time.Hour), expires.Add(-10*time.Hour)
	tests := []struct {
		name   string
		sched  policies.Schedule
		st     PolicyState
		facts  Facts
		now    time.Time
		due    bool
		reason string
		at     time.Time
	}{
		{"before the lead the next due time should be the expiry minus 25% of the lifetime", quarter, st, Facts{}, created.Add(day), false, ReasonNotDue, expires.Add(-2 * day)},
		{"within the lead the key should be due", quarter, st, Facts{}, expires.Add(-day), true, ReasonExpiry, expires.Add(-2 * day)},
		{"a fixed lead should count back from the expiry", fixed, st, Facts{}, expires.Add(-5 * time.Hour), true, ReasonExpiry, expires.Add(-6 * time.Hour)},
		{"expiry should override a closed window", windowed, st, Facts{}, expires.Add(-day), true, ReasonExpiry, expires.Add(-2 * day)},
		{"a window wait should end no later than the expiry due time", windowed, PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created, CurrentKeyExpires: created.Add(60 * day)}, Facts{}, created.Add(31 * day), false, ReasonWindow, mustTime("2026-02-02T08:00:00Z")},
		{"backoff should be capped at half the time from the last attempt to the expiry", quarter, failed, Facts{}, expires.Add(-30 * time.Hour), false, ReasonBackoff, expires.Add(-20 * time.Hour)},
		{"after the capped backoff the key should be due again", quarter, failed, Facts{}, expires.Add(-20 * time.Hour), true, ReasonExpiry, expires.Add(-2 * day)},
		{"an expired key should be due with the loudest reason", quarter, st, Facts{}, expires.Add(time.Minute), true, ReasonExpired, expires},
		{"a stuck policy should stay stuck even as its key expires", quarter, PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created, CurrentKeyExpires: expires, Stuck: true}, Facts{}, expires.Add(-time.Hour), false, ReasonStuck, time.Time{}},
		{"an adopted key's expiry reported by the provider should count", quarter, PolicyState{}, Facts{ExistingKeyCreated: created, ExistingKeyExpires: expires}, expires.Add(-day), true, ReasonExpiry, expires.Add(-2 * day)},
		{"a key that does not expire should follow every", quarter, PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created}, Facts{}, created.Add(7 * day), false, ReasonNotDue, created.Add(30 * day)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &policies.Policy{Name: "p", Schedule: tc.sched}
			d := Decide(p, tc.st, tc.facts, tc.now)
			if d.Due != tc.due || d.Reason != tc.reason || !d.At.Equal(tc.at) {
				t.Fatalf("Decide = {due %v reason %s at %s: %s}, want {due %v reason %s at %s}", d.Due, d.Reason, d.At, d.Message, tc.due, tc.reason, tc.at)
			}
			if d.Message == "" {
				t.Fatal("decision without message")
			}
		})
	}
}

// TestExpiryNotice: expiring is notified once per threshold crossed while
// rotations fail, expired once whatever happens; next says when to look
// again.
func TestExpiryNotice(t *testing.T) {
	exp := mustTime("2026-03-01T00:00:00Z")
	p := &policies.Policy{Name: "p", Schedule: policies.Schedule{ExpiryNotify: []time.Duration{24 * time.Hour, time.Hour}}}
	base := PolicyState{CurrentKeyID: "k", CurrentKeyExpires: exp}
	failing := base
	failing.Failures = 1
	tests := []struct {
		name      string
		st        PolicyState
		now       time.Time
		res       Result
		threshold time.Duration
		next      time.Time
	}{
		{"far from expiry nothing should be notified; look again at the first threshold", failing, exp.Add(-48 * time.Hour), "", 0, exp.Add(-24 * time.Hour)},
		{"crossing 24h while failing should notify expiring", failing, exp.Add(-20 * time.Hour), ResultExpiring, 24 * time.Hour, exp.Add(-time.Hour)},
		{"within 24h without failures nothing should be notified", base, exp.Add(-20 * time.Hour), "", 0, exp.Add(-time.Hour)},
		{"24h notified, still above 1h: nothing more", withNotified(failing, 24*time.Hour), exp.Add(-2 * time.Hour), "", 0, exp.Add(-time.Hour)},
		{"crossing 1h after 24h should notify again", withNotified(failing, 24*time.Hour), exp.Add(-30 * time.Minute), ResultExpiring, time.Hour, exp},
		{"jumping past both thresholds should notify the shortest once", failing, exp.Add(-30 * time.Minute), ResultExpiring, time.Hour, exp},
		{"an expired key should be notified even without failures", base, exp.Add(time.Second), ResultExpired, 0, time.Time{}},
		{"an expired key should be notified once", PolicyState{CurrentKeyID: "k", CurrentKeyExpires: exp, ExpiredNotified: true}, exp.Add(time.Hour), "", 0, time.Time{}},
		{"a key without expiry should never be notified", PolicyState{CurrentKeyID: "k", Failures: 3}, exp, "", 0, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, th, next := ExpiryNotice(p, tc.st, tc.now)
			if res != tc.res || th != tc.threshold || !next.Equal(tc.next) {
				t.Fatalf("ExpiryNotice = %q %s %s, want %q %s %s", res, th, next, tc.res, tc.threshold, tc.next)
			}
		})
	}
}

func withNotified(st PolicyState, d time.Duration) PolicyState {
	st.ExpiryNotified = d
	return st
}

// TestEngineEmitsExpiryEventsOnce: a stuck policy whose key nears and
// passes its expiry emits expiring at each threshold and expired, each
// once, through the audit recorder and the observers, with the policy's
// labels and no key id.
func TestEngineEmitsExpiryEventsOnce(t *testing.T) {
	ctx := context.Background()
	exp := mustTime("2026-03-01T00:00:00Z")
	now := exp.Add(-30 * time.Hour)
	j := NewMemJournal()
	if _, err := j.Update(ctx, "p", func(st *PolicyState) error {
		st.CurrentKeyID, st.CurrentKeyCreated, st.CurrentKeyExpires = "AKIAEXPIRING0001", exp.Add(-8*24*time.Hour), exp
		st.Stuck, st.Failures, st.LastError = true, 5, "the key service refuses"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var events []Event
	e, err := New(Options{Journal: j, Now: func() time.Time { return now }, Observers: []Observer{ObserverFunc(func(_ context.Context, ev Event) { events = append(events, ev) })}})
	if err != nil {
		t.Fatal(err)
	}
	p := &policies.Policy{Name: "p", MaxFailures: 5, Labels: policies.Labels{"env": "prod"}, Schedule: policies.Schedule{Every: 30 * 24 * time.Hour, ExpiryLead: policies.ExpiryLead{Fraction: 0.25}, ExpiryNotify: []time.Duration{24 * time.Hour, time.Hour}}}
	e.SetPolicies([]*policies.Policy{p})
	var nexts []time.Time
	for _, at := range []time.Duration{-30 * time.Hour, -20 * time.Hour, -19 * time.Hour, -30 * time.Minute, time.Minute, 2 * time.Hour} {
		now = exp.Add(at)
		out, err := e.Advance(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if out.Result != OutcomeStuck {
			t.Fatalf("at %s: %s, want stuck", at, out.Result)
		}
		nexts = append(nexts, out.Next)
	}
	var got []Result
	for _, ev := range events {
		got = append(got, ev.Result)
		if ev.Step != StepExpiry || ev.Labels["env"] != "prod" || ev.NewKeyID != "" || ev.OldKeyID != "" || !ev.ExpiresAt.Equal(exp) {
			t.Errorf("event %+v", ev)
		}
	}
	want := []Result{ResultExpiring, ResultExpiring, ResultExpired}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("events %v, want %v", got, want)
	}
	if !nexts[0].Equal(exp.Add(-24 * time.Hour)) {
		t.Errorf("a stuck policy should be looked at again at the first threshold, got %s", nexts[0])
	}
}
