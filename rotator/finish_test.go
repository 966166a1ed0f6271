package rotator

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/plugin"
)

// finishingSink is a fake sink that keeps bookkeeping until its rotation
// ends (as kubernetes_secret keeps the previous value) and counts Finish.
type finishingSink struct {
	*fsink
	finished map[string]int
}

func (s *finishingSink) Finish(_ context.Context, rot plugin.Rotation) error {
	s.finished[rot.ID]++
	return nil
}

func TestSinksAreToldWhenTheRotationEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail string
		want Verdict
	}{
		{"committed", "", OutcomeDone},
		{"rolled back", "promote:sink:b", OutcomeRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.maxKeys = 2
			w.seed("sink:a", "sink:b")
			f := newFixture(t, fullProvider(w))
			fs := &finishingSink{fsink: f.p.Sinks[0].Sink.(*fsink), finished: map[string]int{}}
			f.p.Sinks[0].Sink = fs
			if tc.fail != "" {
				w.fail[tc.fail] = 1000
				w.failErr[tc.fail] = plugin.ErrConflict
			}
			e := f.engine(t, map[string]string{})
			out, err := e.Rotate(context.Background(), "pay", RotateOptions{UntilDone: true})
			if err != nil || out.Result != tc.want {
				t.Fatalf("Rotate = %+v, %v", out, err)
			}
			if n := fs.finished[out.RotationID]; n != 1 {
				t.Fatalf("Finish called %d times for rotation %s, want once", n, out.RotationID)
			}
		})
	}
}
