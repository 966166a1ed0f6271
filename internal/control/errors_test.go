package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// TestLostJournalRefusesStatusPlanAndRotate serves the control API on a
// real socket with a lost journal: status, plan and rotate fail with the
// code journal_lost, which the client maps to rotator.ErrJournalLost, and
// the daemon's explanation reaches the client whole.
func TestLostJournalRefusesStatusPlanAndRotate(t *testing.T) {
	if (&RemoteError{Code: CodeJournalLost}).Unwrap() != rotator.ErrJournalLost || ErrorCode(fmt.Errorf("x: %w", rotator.ErrJournalLost)) != CodeJournalLost {
		t.Fatal("journal_lost does not map to rotator.ErrJournalLost")
	}
	dir := t.TempDir()
	ln, err := Listen(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	why := fmt.Errorf("%w: /state/journal.db was deleted while rekey was running", rotator.ErrJournalLost)
	srv := &Server{Lost: func() error { return why }}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	c := Dial(dir)
	if c == nil {
		t.Fatal("no daemon answers on the socket")
	}
	_, serr := c.Status(ctx)
	_, perr := c.Plan(ctx, nil)
	rerr := c.Rotate(ctx, RotateRequest{Policies: []string{"pay"}}, func(Message) { t.Error("rotate streamed a message") })
	for name, err := range map[string]error{"status": serr, "plan": perr, "rotate": rerr} {
		if !errors.Is(err, rotator.ErrJournalLost) || !strings.Contains(err.Error(), "was deleted while rekey was running") {
			t.Errorf("%s with the journal lost: %v", name, err)
		}
		if errors.Is(err, rotator.ErrUnknownPolicy) || errors.Is(err, context.Canceled) {
			t.Errorf("%s: the error matches another sentinel: %v", name, err)
		}
	}
}
