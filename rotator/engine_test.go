package rotator

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
)

type fixture struct {
	w    *world
	p    *policies.Policy
	j    Journal
	dir  string
	logs *bytes.Buffer
	evs  *[]Event
}

func newFixture(t testing.TB, prov providers.Provider) *fixture {
	t.Helper()
	w := prov.(interface{ world() *world }).world()
	p := &policies.Policy{
		Name:        "pay",
		Schedule:    policies.Schedule{Every: 30 * 24 * time.Hour},
		Provider:    policies.ProviderBlock{Kind: "fake", Provider: prov},
		Sinks:       []policies.SinkBlock{{Kind: "fake", Sink: &fsink{w: w, loc: "sink:a"}}, {Kind: "fake", Sink: &fsink{w: w, loc: "sink:b"}}},
		Probes:      []policies.ProbeBlock{{Kind: "key", Target: probes.TargetKey, Timeout: 300 * time.Millisecond, Interval: time.Millisecond, Successes: 1, Probe: keyProbe{w}}, {Kind: "dep", Target: probes.TargetDependent, Timeout: 300 * time.Millisecond, Interval: time.Millisecond, Successes: 2, Probe: depProbe{w}}},
		Reloads:     []policies.ReloadBlock{{Kind: "reload", Timeout: time.Second, Reloader: freload{w}}},
		StepTimeout: 200 * time.Millisecond,
		MaxFailures: 3,
	}
	dir := t.TempDir()
	j, err := OpenBoltJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	evs := &[]Event{}
	return &fixture{w: w, p: p, j: j, dir: dir, logs: &bytes.Buffer{}, evs: evs}
}

func (f *fixture) engine(t testing.TB, fps map[string]string) *Engine {
	t.Helper()
	e, err := New(Options{Journal: f.j, Logger: zerolog.New(f.logs), Failpoints: fps, RecheckInterval: 5 * time.Millisecond,
		Observers: []Observer{ObserverFunc(func(_ context.Context, ev Event) { *f.evs = append(*f.evs, ev) })}})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies([]*policies.Policy{f.p})
	return e
}

func (p *fprov) world() *world { return p.w }

func fullProvider(w *world) fullProv { return fullProv{listingProv{&fprov{w: w}}} }

func (f *fixture) state(t *testing.T) PolicyState {
	t.Helper()
	st, _, err := f.j.Get(context.Background(), f.p.Name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRotationHappyPathRevokesOldKeyOnlyAfterCommit(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{Soak: 10 * time.Millisecond}
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
	if err != nil || out.Result != "done" {
		t.Fatalf("Rotate = %+v, %v", out, err)
	}
	w.check()
	st := f.state(t)
	if st.CurrentKeyID == old || st.CurrentKeyID == "" || st.Active != nil || st.Generation != 1 || st.Failures != 0 {
		t.Fatalf("state after rotation: %+v", st)
	}
	if _, ok := w.keys[old]; ok {
		t.Fatalf("old key %s not deleted", old)
	}
	if w.served["sink:a"] != st.CurrentKeyID || w.served["sink:b"] != st.CurrentKeyID {
		t.Fatalf("sinks serve %v, want %s", w.served, st.CurrentKeyID)
	}
	want := []string{"create", "promote sink:a", "promote sink:b", "reload", "active " + old + " false", "delete " + old}
	assertOrder(t, w.ledger, want)
	var steps []string
	for _, ev := range *f.evs {
		steps = append(steps, string(ev.Step)+"/"+string(ev.Result))
	}
	assertOrder(t, steps, []string{"create/ok", "stage/ok", "test/ok", "promote/ok", "reload/ok", "verify/ok", "commit/ok", "deactivate/ok", "revoke/ok", "done/ok"})
}

func assertOrder(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("sequence %q does not contain %q in order (matched %d)", got, want, i)
	}
}

func TestFailedProbesRollBack(t *testing.T) {
	for _, tc := range []struct {
		name, fail string
		promoted   bool
	}{
		{"a failing key probe rolls back before any sink changes", "probe:key", false},
		{"a failing dependent probe restores every sink and reloads again", "probe:dep", true},
		{"a conflicting sink write rolls back the sinks already promoted", "promote:sink:b", true},
		{"a failing reload rolls back", "reload", true},
		{"a failing stage rolls back", "stage:sink:b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.maxKeys = 2
			old := w.seed("sink:a", "sink:b")
			f := newFixture(t, fullProvider(w))
			w.fail[tc.fail] = 1000
			switch tc.fail {
			case "promote:sink:b":
				w.failErr[tc.fail] = plugin.ErrConflict
			case "probe:dep", "reload":
				// Only the forward attempt fails: the rollback must prove the
				// restored key served (reload and dependents pass) before it
				// deletes the new key.
				w.fail[tc.fail] = 1
				w.failErr[tc.fail] = plugin.Permanent(errors.New(tc.fail + ": injected failure"))
			}
			e := f.engine(t, map[string]string{})
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
			if err != nil || out.Result != "rolled_back" || out.Err == nil {
				t.Fatalf("Rotate = %+v, %v", out, err)
			}
			w.check()
			if w.served["sink:a"] != old || w.served["sink:b"] != old {
				t.Fatalf("sinks serve %v after rollback, want %s", w.served, old)
			}
			if len(w.keys) != 1 || w.keys[old] == nil || !w.keys[old].active {
				t.Fatalf("provider keys after rollback: %v", w.keys)
			}
			st := f.state(t)
			if st.Failures != 1 || st.NotBefore.IsZero() || st.Active != nil || st.LastResult != "rolled_back" || st.CurrentKeyID != "" {
				t.Fatalf("state: %+v", st)
			}
			if tc.promoted && tc.fail != "reload" {
				assertOrder(t, w.ledger, []string{"restore sink:a", "reload", "delete"})
			}
		})
	}
}

func TestRollbackNeverDeletesAKeyASinkMayServe(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	w.fail["probe:dep"] = 1000
	w.fail["rollback:sink:a"] = 1000 // the sink cannot be restored for now
	e := f.engine(t, map[string]string{})
	out, _ := e.Rotate(context.Background(), "pay", RotateOptions{})
	if out.Result != "failed" || out.Step != StepRollback {
		t.Fatalf("outcome %+v", out)
	}
	w.check()
	st := f.state(t)
	if st.Active == nil || st.Active.Step != StepRollback {
		t.Fatalf("rollback not left pending: %+v", st)
	}
	if _, ok := w.keys[st.Active.NewKeyID]; !ok {
		t.Fatalf("new key deleted while sink:a may still serve it")
	}
	w.fail["rollback:sink:a"] = 0
	w.fail["probe:dep"] = 0
	out, err := e.Advance(context.Background(), "pay")
	if err != nil || out.Result != "rolled_back" {
		t.Fatalf("second advance %+v %v", out, err)
	}
	w.check()
	if w.served["sink:a"] != old || len(w.keys) != 1 {
		t.Fatalf("after retry: served %v keys %v", w.served, w.keys)
	}
}

func TestFailureBudgetMarksStuckAndManualRotateReleases(t *testing.T) {
	w := newWorld(t)
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	w.fail["probe:key"] = 3
	w.failErr["probe:key"] = plugin.Permanent(errors.New("key rejected"))
	e := f.engine(t, map[string]string{})
	for i := 0; i < 3; i++ {
		if _, err := e.Rotate(context.Background(), "pay", RotateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := f.state(t)
	if !st.Stuck || st.Failures != 3 {
		t.Fatalf("after 3 failures: %+v", st)
	}
	out, _ := e.Advance(context.Background(), "pay")
	if out.Result != "stuck" || !strings.Contains(out.Decision.Message, "rekey rotate pay") {
		t.Fatalf("stuck policy advanced automatically: %+v", out)
	}
	var stuckEvents int
	for _, ev := range *f.evs {
		if ev.Result == ResultStuck {
			stuckEvents++
		}
	}
	if stuckEvents != 1 {
		t.Fatalf("stuck events = %d, want 1", stuckEvents)
	}
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
	if err != nil || out.Result != "done" {
		t.Fatalf("manual rotate of stuck policy: %+v %v", out, err)
	}
	if st := f.state(t); st.Stuck || st.Failures != 0 {
		t.Fatalf("not released: %+v", st)
	}
	w.check()
}

func TestCapacityRefusesUnknownSecondKey(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	stranger := w.seed()
	f := newFixture(t, fullProvider(w))
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != "failed" || !errors.Is(out.Err, plugin.ErrLimit) {
		t.Fatalf("outcome %+v %v", out, err)
	}
	msg := out.Err.Error()
	if strings.Contains(msg, stranger) || !strings.Contains(msg, stranger[len(stranger)-4:]) || !strings.Contains(msg, "delete it") {
		t.Fatalf("error should name the key masked and say what to do: %s", msg)
	}
	if len(w.keys) != 2 || w.keys[stranger] == nil {
		t.Fatalf("a key was created or deleted: %v", w.keys)
	}
}

func TestSoakFailureReactivatesOldKeyAndSticks(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	old := w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{Soak: time.Hour}
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != "committed" || out.Step != StepSoak {
		t.Fatalf("outcome %+v %v", out, err)
	}
	if w.keys[old].active {
		t.Fatal("old key not deactivated for the soak")
	}
	w.fail["probe:dep"] = 1000
	out, _ = e.Advance(context.Background(), "pay")
	if !w.keys[old].active {
		t.Fatal("old key not re-activated after dependents failed during soak")
	}
	st := f.state(t)
	if !st.Stuck || st.Active == nil || st.Active.Step != StepDrain {
		t.Fatalf("state %+v outcome %+v", st, out)
	}
	var saw bool
	for _, ev := range *f.evs {
		saw = saw || ev.Result == ResultReactivated
	}
	if !saw {
		t.Fatal("no reactivated event")
	}
}

func TestDrainWaitsWhileOldKeyIsUsedAfterCommit(t *testing.T) {
	w := newWorld(t)
	w.maxKeys = 2
	w.seed("sink:a", "sink:b")
	f := newFixture(t, fullProvider(w))
	f.p.Revoke = policies.Revoke{WaitUnused: true}
	e := f.engine(t, map[string]string{})
	out, err := e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != "done" {
		// no use recorded: done at once
		t.Fatalf("%+v %v", out, err)
	}
	old2 := f.state(t).CurrentKeyID
	w.mu.Lock()
	w.lastUsed[old2] = time.Now().Add(time.Hour) // used "after" the next commit
	w.mu.Unlock()
	out, err = e.Rotate(context.Background(), "pay", RotateOptions{})
	if err != nil || out.Result != "committed" || out.Step != StepDrain {
		t.Fatalf("%+v %v", out, err)
	}
	if _, ok := w.keys[old2]; !ok {
		t.Fatal("old key revoked although it was used after commit")
	}
	w.check()
}

func TestPoliciesWithoutListingStillRetireTheirOwnKeys(t *testing.T) {
	w := newWorld(t)
	prov := &fprov{w: w}
	f := newFixture(t, prov)
	e := f.engine(t, map[string]string{})
	for i := 0; i < 2; i++ {
		if out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true}); err != nil || out.Result != "done" {
			t.Fatalf("%+v %v", out, err)
		}
	}
	if len(w.keys) != 1 {
		t.Fatalf("keys %v: the first rotation's key was not retired by the second", w.keys)
	}
	w.check()
}
