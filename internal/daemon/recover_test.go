package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

func rec(gen int64, id string, step rotator.Step, res rotator.Result, newKey, oldKey string) audit.Record {
	r := audit.Record{Version: audit.SchemaVersion, Policy: "p", RotationID: id, Generation: gen, Step: step, Result: res,
		Time: time.Date(2026, 1, 1, 0, 0, int(gen), 0, time.UTC)}
	if newKey != "" {
		r.NewKeyID = secret.Mask(newKey)
	}
	if oldKey != "" {
		r.OldKeyID = secret.Mask(oldKey)
	}
	return r
}

func TestRebuild(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	k := func(id string) plugin.KeyInfo { return plugin.KeyInfo{ID: id, CreatedAt: now.Add(-time.Hour)} }
	done := []audit.Record{
		rec(1, "r1", rotator.StepCreate, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
		rec(1, "r1", rotator.StepCommit, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
		rec(1, "r1", rotator.StepDone, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
	}
	committed := append(append([]audit.Record(nil), done[:2]...),
		rec(2, "r2", rotator.StepCreate, rotator.ResultOK, "KEY-B-2222", "KEY-A-1111"),
		rec(2, "r2", rotator.StepCommit, rotator.ResultOK, "KEY-B-2222", "KEY-A-1111"),
		rec(2, "r2", rotator.StepSoak, rotator.ResultWaiting, "KEY-B-2222", "KEY-A-1111"))
	beforeCommit := append(append([]audit.Record(nil), done...),
		rec(2, "r2", rotator.StepCreate, rotator.ResultOK, "KEY-B-2222", "KEY-A-1111"),
		rec(2, "r2", rotator.StepPromote, rotator.ResultOK, "KEY-B-2222", "KEY-A-1111"))
	cases := []struct {
		name     string
		keys     []plugin.KeyInfo
		canList  bool
		recs     []audit.Record
		current  string
		retired  []string
		gen      int64
		sayAll   []string
		adoptNil bool
	}{
		{name: "a finished rotation's key is adopted as current", keys: []plugin.KeyInfo{k("KEY-A-1111")}, canList: true, recs: done,
			current: "KEY-A-1111", gen: 1, sayAll: []string{"committed it"}},
		{name: "a committed rotation's old key is adopted as retired", keys: []plugin.KeyInfo{k("KEY-A-1111"), k("KEY-B-2222")}, canList: true, recs: committed,
			current: "KEY-B-2222", retired: []string{"KEY-A-1111"}, gen: 2, sayAll: []string{"as retired"}},
		{name: "a key created before commit is left alone and the old key stays current", keys: []plugin.KeyInfo{k("KEY-A-1111"), k("KEY-B-2222")}, canList: true, recs: beforeCommit,
			current: "KEY-A-1111", gen: 2, sayAll: []string{"leave " + secret.Mask("KEY-B-2222") + " alone", "unknown outcome", "rollback may not have finished"}},
		{name: "a key the audit does not explain is left alone", keys: []plugin.KeyInfo{k("KEY-A-1111"), k("KEY-X-9999")}, canList: true, recs: done,
			current: "KEY-A-1111", gen: 1, sayAll: []string{"leave " + secret.Mask("KEY-X-9999") + " alone: the audit log does not explain it"}},
		{name: "no audit and one key adopts it", keys: []plugin.KeyInfo{k("KEY-A-1111")}, canList: true,
			current: "KEY-A-1111", sayAll: []string{"the only key"}},
		{name: "no audit and two keys adopts none", keys: []plugin.KeyInfo{k("KEY-A-1111"), k("KEY-B-2222")}, canList: true,
			sayAll: []string{"none is adopted"}},
		{name: "a provider that cannot list gets the generation and a warning", recs: committed, gen: 2,
			sayAll: []string{"cannot list", "r2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := Rebuild("p", c.keys, c.canList, c.recs, now)
			notes := strings.Join(rc.Notes, "\n")
			if rc.State == nil {
				t.Fatalf("no state; notes:\n%s", notes)
			}
			st := rc.State
			if st.CurrentKeyID != c.current || st.Generation != c.gen || strings.Join(st.Retired, ",") != strings.Join(c.retired, ",") {
				t.Fatalf("state %+v; notes:\n%s", st, notes)
			}
			for _, s := range c.sayAll {
				if !strings.Contains(notes, s) {
					t.Errorf("notes lack %q:\n%s", s, notes)
				}
			}
			for _, key := range []string{"KEY-A-1111", "KEY-B-2222", "KEY-X-9999"} {
				if strings.Contains(notes, key) {
					t.Errorf("notes carry a whole key id %s:\n%s", key, notes)
				}
			}
		})
	}
}

func TestReadAuditSkipsTornLines(t *testing.T) {
	in := `{"v":1,"policy":"p","rotation_id":"r","step":"create","result":"ok"}
{"v":1,"policy":"p","rotat`
	recs, skipped, err := ReadAudit(strings.NewReader(in))
	if err != nil || len(recs) != 1 || skipped != 1 {
		t.Fatalf("%v %d %v", recs, skipped, err)
	}
}

func TestRebuildKeepsExpiry(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(36 * time.Hour)
	key := func(id string, expires time.Time) plugin.KeyInfo {
		return plugin.KeyInfo{ID: id, CreatedAt: now.Add(-time.Hour), ExpiresAt: expires}
	}
	done := []audit.Record{
		rec(1, "r1", rotator.StepCreate, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
		rec(1, "r1", rotator.StepCommit, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
		rec(1, "r1", rotator.StepDone, rotator.ResultOK, "KEY-A-1111", "KEY-0-0000"),
	}
	beforeCommit := append(append([]audit.Record(nil), done...),
		rec(2, "r2", rotator.StepCreate, rotator.ResultOK, "KEY-B-2222", "KEY-A-1111"))
	cases := []struct {
		name string
		keys []plugin.KeyInfo
		recs []audit.Record
		want time.Time
	}{
		{"committed key", []plugin.KeyInfo{key("KEY-A-1111", exp)}, done, exp},
		{"old key of an uncommitted rotation", []plugin.KeyInfo{key("KEY-A-1111", exp), key("KEY-B-2222", exp.Add(time.Hour))}, beforeCommit, exp},
		{"only key, no audit", []plugin.KeyInfo{key("KEY-A-1111", exp)}, nil, exp},
		{"a key that does not expire", []plugin.KeyInfo{key("KEY-A-1111", time.Time{})}, done, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := Rebuild("p", c.keys, true, c.recs, now)
			notes := strings.Join(rc.Notes, "\n")
			if rc.State == nil || rc.State.CurrentKeyID != "KEY-A-1111" {
				t.Fatalf("state %+v; notes:\n%s", rc.State, notes)
			}
			if !rc.State.CurrentKeyExpires.Equal(c.want) {
				t.Fatalf("CurrentKeyExpires = %s, want %s", rc.State.CurrentKeyExpires, c.want)
			}
			if says := strings.Contains(notes, "expires "+exp.Format(time.RFC3339)); says != !c.want.IsZero() {
				t.Errorf("notes name the expiry: %v, want %v:\n%s", says, !c.want.IsZero(), notes)
			}
		})
	}
}
