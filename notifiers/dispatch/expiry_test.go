package dispatch

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/rotator"
)

// TestExpiryAndCompromiseEvents: expiry events and the steps of a
// compromised rotation get their names, and the message carries the
// expiry, the reason, the note and the labels.
func TestExpiryAndCompromiseEvents(t *testing.T) {
	exp := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		ev   rotator.Event
		want string
	}{
		{rotator.Event{Step: rotator.StepExpiry, Result: rotator.ResultExpiring, ExpiresAt: exp}, notifiers.EventExpiring},
		{rotator.Event{Step: rotator.StepExpiry, Result: rotator.ResultExpired, ExpiresAt: exp}, notifiers.EventExpired},
		{rotator.Event{Step: rotator.StepRevoke, Result: rotator.ResultOK, Reason: rotator.ReasonCompromised}, notifiers.EventCompromised},
		{rotator.Event{Step: rotator.StepRevoke, Result: rotator.ResultForced, Reason: rotator.ReasonCompromised}, notifiers.EventCompromised},
		{rotator.Event{Step: rotator.StepVerify, Result: rotator.ResultFailed, Reason: rotator.ReasonCompromised}, notifiers.EventFailure},
		{rotator.Event{Step: rotator.StepRevoke, Result: rotator.ResultOK}, ""},
	}
	for _, c := range cases {
		got, _ := EventName(c.ev)
		if got != c.want {
			t.Errorf("%s/%s reason %q: %q, want %q", c.ev.Step, c.ev.Result, c.ev.Reason, got, c.want)
		}
	}
	m := NewMessage(notifiers.EventExpired, "h", rotator.Event{Policy: "p", Step: rotator.StepExpiry, Result: rotator.ResultExpired, ExpiresAt: exp, Reason: "compromised", Note: "n", Labels: map[string]string{"env": "prod"}})
	if !m.ExpiresAt.Equal(exp) || m.Reason != "compromised" || m.Note != "n" || m.Labels["env"] != "prod" {
		t.Fatalf("message %+v", m)
	}
}
