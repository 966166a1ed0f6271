package rotator

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

type cronEvery struct{ d time.Duration }

func (c cronEvery) Next(t time.Time) time.Time { return t.Truncate(c.d).Add(c.d) }

func TestDecide(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	weekdays := &policies.Window{Expr: "Mon-Thu 09:00-16:00 Europe/Berlin", Days: [7]bool{false, true, true, true, true, false, false}, Start: 9 * time.Hour, End: 16 * time.Hour, Location: berlin}
	created := mustTime("2026-01-01T10:00:00Z")
	day := 24 * time.Hour
	every30 := policies.Schedule{Every: 30 * day}
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
		{"never rotated and no key known should be due now", every30, PolicyState{}, Facts{}, mustTime("2026-01-05T00:00:00Z"), true, ReasonNeverRotated, mustTime("2026-01-05T00:00:00Z")},
		{"an adopted key younger than every should not be due", every30, PolicyState{}, Facts{ExistingKeyCreated: created}, mustTime("2026-01-05T00:00:00Z"), false, ReasonNotDue, created.Add(30 * day)},
		{"a key older than every should be due", every30, PolicyState{CurrentKeyCreated: created}, Facts{}, created.Add(31 * day), true, ReasonAge, created.Add(30 * day)},
		{"exactly at every should be due", every30, PolicyState{CurrentKeyCreated: created}, Facts{}, created.Add(30 * day), true, ReasonAge, created.Add(30 * day)},
		{"cron earlier than every should win", policies.Schedule{Every: 30 * day, Cron: cronEvery{7 * day}, CronExpr: "weekly"}, PolicyState{CurrentKeyCreated: created}, Facts{}, created.Add(8 * day), true, ReasonCron, cronEvery{7 * day}.Next(created)},
		{"due outside the window should wait for the window to open", policies.Schedule{Every: day, Window: weekdays}, PolicyState{CurrentKeyCreated: mustTime("2026-01-01T00:00:00Z")}, Facts{}, mustTime("2026-01-03T12:00:00Z") /* Saturday */, false, ReasonWindow, mustTime("2026-01-05T08:00:00Z") /* Monday 09:00 Berlin */},
		{"due inside the window should be due", policies.Schedule{Every: day, Window: weekdays}, PolicyState{CurrentKeyCreated: mustTime("2026-01-01T00:00:00Z")}, Facts{}, mustTime("2026-01-05T10:00:00Z"), true, ReasonAge, mustTime("2026-01-02T00:00:00Z")},
		{"a key over max_age should rotate even outside the window", policies.Schedule{Every: day, MaxAge: 2 * day, Window: weekdays}, PolicyState{CurrentKeyCreated: mustTime("2026-01-01T00:00:00Z")}, Facts{}, mustTime("2026-01-03T12:00:00Z"), true, ReasonMaxAge, mustTime("2026-01-03T00:00:00Z")},
		{"backoff after failures should hold a due policy back", every30, PolicyState{CurrentKeyCreated: created, Failures: 2, NotBefore: created.Add(40 * day)}, Facts{}, created.Add(31 * day), false, ReasonBackoff, created.Add(40 * day)},
		{"a stuck policy should never be due automatically", every30, PolicyState{CurrentKeyCreated: created, Stuck: true, Failures: 5}, Facts{}, created.Add(90 * day), false, ReasonStuck, time.Time{}},
		{"a key kept unverified should be due at once", every30, PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created, CurrentKeyUnverified: true}, Facts{}, created.Add(time.Minute), true, ReasonUnverified, created.Add(time.Minute)},
		{"a key kept unverified should wait for the backoff", every30, PolicyState{CurrentKeyID: "k1", CurrentKeyCreated: created, CurrentKeyUnverified: true, Failures: 1, NotBefore: created.Add(time.Hour)}, Facts{}, created.Add(time.Minute), false, ReasonBackoff, created.Add(time.Hour)},
		{"a rotation in flight should be continued, not started", every30, PolicyState{Active: &Record{ID: "r1", Step: StepDrain}}, Facts{}, created, false, ReasonInFlight, created},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &policies.Policy{Name: "p", Schedule: tc.sched}
			d := Decide(p, tc.st, tc.facts, tc.now)
			if d.Due != tc.due || d.Reason != tc.reason || !d.At.Equal(tc.at) {
				t.Fatalf("Decide = {due %v reason %s at %s: %s}, want {due %v reason %s at %s}", d.Due, d.Reason, d.At, d.Message, tc.due, tc.reason, tc.at)
			}
			if d.Message == "" && d.Reason != "" {
				t.Fatal("decision without message")
			}
		})
	}
}

func TestJitterIsDeterministicAndBounded(t *testing.T) {
	for g := int64(1); g < 200; g++ {
		j := Jitter("payments", g, time.Hour)
		if j < 0 || j >= time.Hour {
			t.Fatalf("jitter %s out of range", j)
		}
		if j != Jitter("payments", g, time.Hour) {
			t.Fatal("jitter not deterministic")
		}
	}
	if Jitter("a", 1, time.Hour) == Jitter("b", 1, time.Hour) && Jitter("a", 2, time.Hour) == Jitter("b", 2, time.Hour) {
		t.Fatal("jitter does not spread policies")
	}
	if Jitter("a", 1, 0) != 0 {
		t.Fatal("zero jitter")
	}
}

func TestBackoff(t *testing.T) {
	m := time.Minute
	for _, tc := range []struct {
		failures int
		r        float64
		want     time.Duration
	}{
		{0, 0.5, 0},
		{1, 0, 30 * time.Second},
		{1, 0.999999, 60*time.Second - 1},
		{2, 0, m},
		{3, 0.5, 3 * m},
		{10, 0, 3 * time.Hour},
		{100, 0, 3 * time.Hour},
	} {
		if got := Backoff(tc.failures, m, 6*time.Hour, tc.r); got.Round(time.Millisecond) != tc.want.Round(time.Millisecond) {
			t.Errorf("Backoff(%d, r=%v) = %s, want %s", tc.failures, tc.r, got, tc.want)
		}
	}
}

func TestPlanCapacity(t *testing.T) {
	k := func(id string) plugin.KeyInfo { return plugin.KeyInfo{ID: id, Status: plugin.KeyActive} }
	tests := []struct {
		name        string
		keys        []plugin.KeyInfo
		max         int
		st          PolicyState
		old, delete []string
		errHas      string
	}{
		{"one pre-existing key should be adopted as the old key", []plugin.KeyInfo{k("AKIAOLD1")}, 2, PolicyState{}, []string{"AKIAOLD1"}, nil, ""},
		{"no key at all should create without an old key", nil, 2, PolicyState{}, nil, nil, ""},
		{"the journal's current key should be the old key", []plugin.KeyInfo{k("AKIACUR1")}, 2, PolicyState{CurrentKeyID: "AKIACUR1"}, []string{"AKIACUR1"}, nil, ""},
		{"an unknown second key at the limit should be refused", []plugin.KeyInfo{k("AKIACUR1"), k("AKIASTRANGER")}, 2, PolicyState{CurrentKeyID: "AKIACUR1"}, nil, nil, "unknown to rekey"},
		{"two pre-existing keys at the limit should be refused", []plugin.KeyInfo{k("AKIAAAA1"), k("AKIABBB2")}, 2, PolicyState{}, nil, nil, "2 of them unknown"},
		{"a retired key should be deleted first to make room", []plugin.KeyInfo{k("AKIACUR1"), k("AKIARET1")}, 2, PolicyState{CurrentKeyID: "AKIACUR1", Retired: []string{"AKIARET1"}}, []string{"AKIACUR1"}, []string{"AKIARET1"}, ""},
		{"a key tagged with a rolled-back rotation should be deleted first", []plugin.KeyInfo{k("AKIACUR1"), {ID: "AKIALATE", Status: plugin.KeyActive, RotationID: "rot-rb"}}, 2,
			PolicyState{CurrentKeyID: "AKIACUR1", History: []Record{{ID: "rot-rb", Result: "rolled_back"}}}, []string{"AKIACUR1"}, []string{"AKIALATE"}, ""},
		{"a key tagged with a finished rotation is not an orphan", []plugin.KeyInfo{k("AKIACUR1"), {ID: "AKIADONE", Status: plugin.KeyActive, RotationID: "rot-ok"}}, 2,
			PolicyState{CurrentKeyID: "AKIACUR1", History: []Record{{ID: "rot-ok", Result: "done"}}}, nil, nil, "unknown to rekey"},
		{"an unknown key with room should be left alone", []plugin.KeyInfo{k("AKIACUR1"), k("AKIAX")}, 0, PolicyState{CurrentKeyID: "AKIACUR1"}, []string{"AKIACUR1"}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanCapacity(tc.keys, tc.max, tc.st)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want containing %q", err, tc.errHas)
				}
				if strings.Contains(err.Error(), "AKIASTRANGER") {
					t.Fatal("error names an unmasked key id")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(plan.Old, ",") != strings.Join(tc.old, ",") || strings.Join(plan.DeleteFirst, ",") != strings.Join(tc.delete, ",") {
				t.Fatalf("plan %+v, want old %v delete %v", plan, tc.old, tc.delete)
			}
		})
	}
}

func TestOrphanKeys(t *testing.T) {
	intent := mustTime("2026-03-01T12:00:00.700Z")
	rec := Record{ID: "rot-1", IntentAt: intent, OldKeyIDs: []string{"OLD"}}
	st := PolicyState{CurrentKeyID: "OLD", Retired: []string{"RETIRED"}}
	key := func(id, rot string, created string) plugin.KeyInfo {
		k := plugin.KeyInfo{ID: id, RotationID: rot}
		if created != "" {
			k.CreatedAt = mustTime(created)
		}
		return k
	}
	for _, tc := range []struct {
		name string
		keys []plugin.KeyInfo
		st   PolicyState
		rec  Record
		want []string
	}{
		{"a key tagged with this rotation is an orphan", []plugin.KeyInfo{key("NEW", "rot-1", "2020-01-01T00:00:00Z")}, st, rec, []string{"NEW"}},
		{"a key tagged with another rotation is not ours", []plugin.KeyInfo{key("NEW", "rot-2", "2026-03-01T12:00:01Z")}, st, rec, nil},
		{"an untagged key created after the intent is an orphan", []plugin.KeyInfo{key("NEW", "", "2026-03-01T12:00:05Z")}, st, rec, []string{"NEW"}},
		{"created in the intent's second counts (providers report whole seconds)", []plugin.KeyInfo{key("NEW", "", "2026-03-01T12:00:00Z")}, st, rec, []string{"NEW"}},
		{"an untagged key created before the intent is not ours", []plugin.KeyInfo{key("STRANGER", "", "2026-03-01T11:59:59Z")}, st, rec, nil},
		{"an untagged key without a creation time is not ours", []plugin.KeyInfo{key("STRANGER", "", "")}, st, rec, nil},
		{"the current, retired and old keys are never orphans", []plugin.KeyInfo{key("OLD", "rot-1", "2026-03-01T12:00:05Z"), key("RETIRED", "", "2026-03-01T12:00:05Z")}, st, rec, nil},
		{"no journaled intent: nothing is an orphan", []plugin.KeyInfo{key("NEW", "rot-1", "2026-03-01T12:00:05Z")}, st, Record{ID: "rot-1"}, nil},
		{"several keys: only the orphans", []plugin.KeyInfo{key("OLD", "", "2026-01-01T00:00:00Z"), key("NEW", "", "2026-03-01T12:00:03Z"), key("STRANGER", "", "2025-01-01T00:00:00Z")}, st, rec, []string{"NEW"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := OrphanKeys(tc.keys, tc.st, tc.rec)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("OrphanKeys = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDecideKeyCreatedInTheFuture: a provider that reports created_at in
// 2099 (a wrong clock) must not make a policy "not due for decades": the
// key's age counts from when rekey first saw it, and the decision carries a
// warning. Without a first-seen time the age is unknown: rotate now.
func TestDecideKeyCreatedInTheFuture(t *testing.T) {
	day := 24 * time.Hour
	every30 := policies.Schedule{Every: 30 * day}
	future := mustTime("2099-01-01T00:00:00Z")
	seen := mustTime("2026-01-01T10:00:00Z")
	tests := []struct {
		name   string
		sched  policies.Schedule
		st     PolicyState
		facts  Facts
		now    time.Time
		due    bool
		reason string
		at     time.Time
		warn   bool
	}{
		{"a key from 2099 first seen 31 days ago should be due by age", every30, PolicyState{CurrentKeyCreated: future, CurrentKeySeen: seen}, Facts{}, seen.Add(31 * day), true, ReasonAge, seen.Add(30 * day), true},
		{"a key from 2099 first seen 5 days ago should be due 30 days after it was seen", every30, PolicyState{CurrentKeyCreated: future, CurrentKeySeen: seen}, Facts{}, seen.Add(5 * day), false, ReasonNotDue, seen.Add(30 * day), true},
		{"max_age should count from first seen too", policies.Schedule{Every: 30 * day, MaxAge: 40 * day}, PolicyState{CurrentKeyCreated: future, CurrentKeySeen: seen}, Facts{}, seen.Add(41 * day), true, ReasonMaxAge, seen.Add(40 * day), true},
		{"a key from 2099 never seen by rekey should be due now", every30, PolicyState{CurrentKeyCreated: future}, Facts{}, seen, true, ReasonUnknownAge, seen, true},
		{"an adopted key from 2099 should be due now", every30, PolicyState{}, Facts{ExistingKeyCreated: future}, seen, true, ReasonUnknownAge, seen, true},
		{"a created_at within the skew should count as is", every30, PolicyState{CurrentKeyCreated: seen.Add(ClockSkew - time.Second), CurrentKeySeen: seen}, Facts{}, seen.Add(29 * day), false, ReasonNotDue, seen.Add(ClockSkew - time.Second).Add(30 * day), false},
		{"a created_at before first seen should count from created_at", every30, PolicyState{CurrentKeyCreated: seen.Add(-10 * day), CurrentKeySeen: seen}, Facts{}, seen.Add(21 * day), true, ReasonAge, seen.Add(20 * day), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &policies.Policy{Name: "p", Schedule: tc.sched}
			d := Decide(p, tc.st, tc.facts, tc.now)
			if d.Due != tc.due || d.Reason != tc.reason || !d.At.Equal(tc.at) {
				t.Fatalf("Decide = {due %v reason %s at %s: %s}, want {due %v reason %s at %s}", d.Due, d.Reason, d.At, d.Message, tc.due, tc.reason, tc.at)
			}
			if (d.Warning != "") != tc.warn {
				t.Fatalf("warning = %q, want one: %v", d.Warning, tc.warn)
			}
			if tc.warn && !strings.Contains(d.Warning, "2099-01-01T00:00:00Z") {
				t.Fatalf("the warning does not name the reported time: %q", d.Warning)
			}
		})
	}
}
