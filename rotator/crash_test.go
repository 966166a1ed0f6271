package rotator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
)

// TestCrashAtEveryFailpoint simulates a crash at each failpoint (a panic
// that abandons the engine mid-step), then starts a new engine over the same
// journal, reconciles, and rotates to completion. The world checks after
// every change that each sink serves a key the provider accepts; the test
// checks that no key at the provider is unknown to the journal, that the
// provider's limit is never exceeded, and that the rotation is either
// resumed (crash after commit) or rolled back (before), never left half-way.
// The same matrix runs against the real binary in cmd/rekey with SIGKILL.
func TestCrashAtEveryFailpoint(t *testing.T) {
	for _, fp := range Failpoints {
		t.Run(fp, func(t *testing.T) {
			w := newWorld(t)
			w.maxKeys = 2
			w.seed("sink:a", "sink:b")
			f := newFixture(t, fullProvider(w))
			f.p.Revoke = policies.Revoke{Soak: time.Millisecond}
			if fp == "rollback.before" || fp == "rollback.after" {
				w.fail["probe:dep"] = 1 // make the first attempt roll back
				w.failErr["probe:dep"] = plugin.Permanent(errors.New("dependent rejects the key"))
			}
			crashed := func() (crashed bool) {
				defer func() { crashed = recover() != nil }()
				e := f.engine(t, map[string]string{fp: "panic"})
				_, _ = e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
				return false
			}()
			if !crashed {
				t.Fatalf("failpoint %s was never reached", fp)
			}
			w.check()
			before := f.state(t)
			committed := before.Active != nil && before.Active.Committed()

			e := f.engine(t, map[string]string{})
			if err := e.Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.check()
			st := f.state(t)
			if st.Active != nil && !st.Active.Committed() {
				t.Fatalf("after reconcile a rotation is still half-way before commit: %+v", st.Active)
			}
			if committed && (st.History == nil || st.History[len(st.History)-1].Result != "done") && st.Active == nil {
				t.Fatalf("a committed rotation was not rolled forward: %+v", st)
			}
			assertKnownKeys(t, w, st)
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || out.Result != "done" {
				t.Fatalf("rotation after recovery: %+v %v", out, err)
			}
			w.check()
			st = f.state(t)
			assertKnownKeys(t, w, st)
			if len(w.keys) != 1 || w.keys[st.CurrentKeyID] == nil {
				t.Fatalf("after recovery the provider holds %v, journal current %s", w.keys, st.CurrentKeyID)
			}
		})
	}
}

func assertKnownKeys(t *testing.T, w *world, st PolicyState) {
	t.Helper()
	known := map[string]bool{st.CurrentKeyID: true}
	for _, id := range st.Retired {
		known[id] = true
	}
	if a := st.Active; a != nil {
		known[a.NewKeyID] = true
		for _, id := range a.OldKeyIDs {
			known[id] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.keys {
		if !known[id] && !isSeed(id) {
			t.Errorf("provider holds key %s unknown to the journal (orphan): %s", id, fmt.Sprint(st))
		}
	}
}

// isSeed: KEY0001 was created before rekey managed the credential; it is
// adopted as the old key at the first rotation.
func isSeed(id string) bool { return id == "KEY0001" }
