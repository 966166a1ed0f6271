package rotator

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/probes"
)

// staleDependent is an instance that never reloaded: it keeps the key it
// had when the test started, and fails once the provider no longer
// accepts it.
type staleDependent struct {
	w      *world
	keyID  *string // "" once the instance is fixed
	checks *atomic.Int32
	phases *[]string
}

func (p staleDependent) Check(ctx context.Context, _ plugin.Key) error {
	p.checks.Add(1)
	if info, ok := plugin.ProbeInfoFrom(ctx); ok {
		p.w.mu.Lock()
		*p.phases = append(*p.phases, info.Phase+":"+info.OldKeyID)
		p.w.mu.Unlock()
	}
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if *p.keyID == "" {
		return nil
	}
	if k, ok := p.w.keys[*p.keyID]; !ok || !k.active {
		return errors.New("401 from the instance that never reloaded")
	}
	return nil
}

func TestWatchAfterRevoke(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale bool
	}{
		{"every dependent moved on: the watch passes and the rotation ends without alert", false},
		{"an instance still on the revoked key: watch_failed, the alert stays on the policy", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.maxKeys = 2
			old := w.seed("sink:a", "sink:b")
			f := newFixture(t, listingProv{&fprov{w: w}})
			var checks atomic.Int32
			var phases []string
			held := ""
			if tc.stale {
				held = old
			}
			dep := staleDependent{w: w, keyID: &held, checks: &checks, phases: &phases}
			f.p.Probes = append(f.p.Probes, policies.ProbeBlock{Kind: "stale", Target: probes.TargetDependent, Timeout: 50 * time.Millisecond, Interval: time.Millisecond, Successes: 1, Probe: dep})
			f.p.Revoke = policies.Revoke{Watch: 60 * time.Millisecond}
			e := f.engine(t, map[string]string{})
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || out.Result != OutcomeDone {
				t.Fatalf("Rotate = %+v, %v", out, err)
			}
			if _, ok := w.keys[old]; ok {
				t.Fatal("old key not revoked")
			}
			st := f.state(t)
			var watchFailed *Event
			for i, ev := range *f.evs {
				if ev.Step == StepWatch && ev.Result == ResultFailed {
					watchFailed = &(*f.evs)[i]
				}
			}
			if !tc.stale {
				if watchFailed != nil || st.Alert != "" {
					t.Fatalf("alert without a failing dependent: %v %q", watchFailed, st.Alert)
				}
				if checks.Load() < 2 {
					t.Fatalf("the watch ran the dependent probes %d times", checks.Load())
				}
				return
			}
			if watchFailed == nil {
				t.Fatal("no watch_failed event though an instance holds the revoked key")
			}
			if !strings.Contains(watchFailed.Error, "after the old key was revoked") || !strings.Contains(watchFailed.Error, "401") {
				t.Fatalf("the event does not say what the watch saw: %q", watchFailed.Error)
			}
			if st.Alert == "" || st.LastResult != string(OutcomeDone) {
				t.Fatalf("state after a failed watch: alert %q, result %s", st.Alert, st.LastResult)
			}
			saw := strings.Join(phases, " ")
			if !strings.Contains(saw, "watch:"+old) {
				t.Fatalf("the probe was not told it runs in the watch, for the old key %s: %s", old, saw)
			}
			// The instance is fixed; the next rotation that commits clears
			// the alert.
			w.mu.Lock()
			held = ""
			w.mu.Unlock()
			out, err = e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || out.Result != OutcomeDone {
				t.Fatalf("second Rotate = %+v, %v", out, err)
			}
			if st := f.state(t); st.Alert != "" {
				t.Fatalf("the alert outlived a later committed rotation: %q", st.Alert)
			}
		})
	}
}
