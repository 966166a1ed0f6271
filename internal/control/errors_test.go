package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
)

// TestErrorsKeepTheirIdentityAcrossTheSocket sends an outcome through its
// JSON form and checks that the client's error matches the daemon's
// sentinel with errors.Is, and that an error without a sentinel matches
// none.
func TestErrorsKeepTheirIdentityAcrossTheSocket(t *testing.T) {
	for _, sentinel := range []error{rotator.ErrUnknownPolicy, rotator.ErrLocked, plugin.ErrLimit, plugin.ErrConflict, context.Canceled, context.DeadlineExceeded} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			o := FromOutcome(rotator.Outcome{Policy: "pay", Result: rotator.OutcomeFailed, Err: fmt.Errorf("creating key: %w", sentinel)}, nil)
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			var got Outcome
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := got.Err(); !errors.Is(err, sentinel) || err.Error() != "creating key: "+sentinel.Error() {
				t.Fatalf("client error %v (code %q) does not match %v", err, got.Code, sentinel)
			}
			for _, other := range []error{rotator.ErrUnknownPolicy, plugin.ErrLimit, context.Canceled} {
				if other != sentinel && errors.Is(got.Err(), other) {
					t.Fatalf("client error matches %v too", other)
				}
			}
		})
	}
	plain := FromOutcome(rotator.Outcome{Err: errors.New("no such policy, but only in its text")}, nil)
	if plain.Code != "" || errors.Is(plain.Err(), rotator.ErrUnknownPolicy) {
		t.Fatalf("an error's text decided its identity: %+v", plain)
	}
	if (Outcome{}).Err() != nil {
		t.Fatal("an outcome without error has an error")
	}
}
