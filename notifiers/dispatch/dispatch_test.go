package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// notifyFunc adapts a function to notifiers.Notifier.
type notifyFunc func(context.Context, notifiers.Message) error

func (f notifyFunc) Notify(ctx context.Context, m notifiers.Message) error { return f(ctx, m) }

func filter(t *testing.T, names ...string) notifiers.Filter {
	t.Helper()
	f, err := notifiers.NewFilter(names...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEventName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		step   rotator.Step
		result rotator.Result
		want   string
	}{
		{"a completed rotation is a success", rotator.StepDone, rotator.ResultOK, notifiers.EventSuccess},
		{"a failed step is a failure", rotator.StepTest, rotator.ResultFailed, notifiers.EventFailure},
		{"a failed rotation is a failure", rotator.StepFailed, rotator.ResultFailed, notifiers.EventFailure},
		{"a rollback is rolled_back", rotator.StepRolledBack, rotator.ResultRolledBack, notifiers.EventRolledBack},
		{"stuck wins over the step", rotator.StepFailed, rotator.ResultStuck, notifiers.EventStuck},
		{"draining while the old key is used is revoke_pending", rotator.StepDrain, rotator.ResultWaiting, notifiers.EventRevokePending},
		{"a re-activated old key is reactivated", rotator.StepSoak, rotator.ResultReactivated, notifiers.EventReactivated},
		{"a step starting is not notified", rotator.StepCreate, rotator.ResultStarted, ""},
		{"a step passing is not notified", rotator.StepStage, rotator.ResultOK, ""},
		{"waiting elsewhere is not notified", rotator.StepTest, rotator.ResultWaiting, ""},
	}
	for _, tt := range tests {
		got, ok := EventName(rotator.Event{Step: tt.step, Result: tt.result})
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: EventName = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

func jsonNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

// A field added to rotator.Event must be added to notifiers.Message (and
// to NewMessage) on purpose.
func TestMessageCarriesEveryEventField(t *testing.T) {
	t.Parallel()
	msg := jsonNames(reflect.TypeFor[notifiers.Message]())
	for name := range jsonNames(reflect.TypeFor[rotator.Event]()) {
		if !msg[name] {
			t.Errorf("rotator.Event field %q has no counterpart in notifiers.Message", name)
		}
	}
	e := rotator.Event{
		Time: time.Unix(1700000000, 0).UTC(), Policy: "p", RotationID: "r", Generation: 3,
		Step: rotator.StepDone, Result: rotator.ResultOK, NewKeyID: "AKIANEWKEY00001234", OldKeyID: "AKIAOLDKEY00005678",
		Sinks: map[string]string{"file:/x": "v2"}, Duration: time.Second, Error: "e", Manual: true,
	}
	m := NewMessage(notifiers.EventSuccess, "host", e)
	var fromEvent, fromMessage map[string]any
	b, _ := json.Marshal(e)
	_ = json.Unmarshal(b, &fromEvent)
	b, _ = json.Marshal(m)
	_ = json.Unmarshal(b, &fromMessage)
	for k, v := range fromEvent {
		if k == "new_key_id" || k == "old_key_id" {
			if fromMessage[k] != secret.Mask(v.(string)) {
				t.Errorf("%s = %v, want masked %q", k, fromMessage[k], secret.Mask(v.(string)))
			}
			continue
		}
		if !reflect.DeepEqual(fromMessage[k], v) {
			t.Errorf("%s = %v, event has %v", k, fromMessage[k], v)
		}
	}
	if fromMessage["event"] != "success" || fromMessage["hostname"] != "host" || len(m.ID) != 32 {
		t.Errorf("message = %s", b)
	}
}

func TestRoutesByPolicyAndFilter(t *testing.T) {
	t.Parallel()
	got := make(chan string, 10)
	record := func(label string) notifiers.Notifier {
		return notifyFunc(func(_ context.Context, m notifiers.Message) error {
			got <- label + ":" + m.Policy + ":" + m.Event
			return nil
		})
	}
	d := New([]Route{
		{Policy: "a", Kind: "k", On: filter(t, "failure"), Notifier: record("a-failures")},
		{Policy: "", Kind: "k", On: filter(t, "success"), Notifier: record("all-successes")},
	}, Options{})
	d.Start(context.Background())
	ctx := context.Background()
	d.Observe(ctx, rotator.Event{Policy: "a", Step: rotator.StepTest, Result: rotator.ResultFailed})
	d.Observe(ctx, rotator.Event{Policy: "b", Step: rotator.StepTest, Result: rotator.ResultFailed})
	d.Observe(ctx, rotator.Event{Policy: "b", Step: rotator.StepDone, Result: rotator.ResultOK})
	d.Observe(ctx, rotator.Event{Policy: "a", Step: rotator.StepCreate, Result: rotator.ResultStarted})
	d.Close()
	close(got)
	var all []string
	for s := range got {
		all = append(all, s)
	}
	want := map[string]bool{"a-failures:a:failure": true, "all-successes:b:success": true}
	if len(all) != len(want) {
		t.Fatalf("delivered %q, want %v", all, want)
	}
	for _, s := range all {
		if !want[s] {
			t.Errorf("unexpected delivery %q", s)
		}
	}
}

func TestRetriesUntilMaxAttempts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var failures []error
	var mu sync.Mutex
	d := New([]Route{{Kind: "flaky", On: filter(t, "failure"), Notifier: notifyFunc(func(context.Context, notifiers.Message) error {
		calls.Add(1)
		return errors.New("503")
	})}}, Options{BaseDelay: time.Microsecond, MaxDelay: 10 * time.Microsecond, OnFailure: func(kind string, _ notifiers.Message, err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}})
	d.Start(context.Background())
	d.Observe(context.Background(), rotator.Event{Policy: "p", Result: rotator.ResultFailed})
	d.Close()
	if n := calls.Load(); n != DefaultMaxAttempts {
		t.Errorf("%d attempts, want %d", n, DefaultMaxAttempts)
	}
	if len(failures) != 1 {
		t.Errorf("OnFailure called %d times, want 1", len(failures))
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	failed := make(chan error, 1)
	d := New([]Route{{Kind: "k", On: filter(t, "failure"), Notifier: notifyFunc(func(context.Context, notifiers.Message) error {
		calls.Add(1)
		return plugin.Permanent(errors.New("400 bad request"))
	})}}, Options{BaseDelay: time.Microsecond, OnFailure: func(_ string, _ notifiers.Message, err error) { failed <- err }})
	d.Start(context.Background())
	d.Observe(context.Background(), rotator.Event{Policy: "p", Result: rotator.ResultFailed})
	d.Close()
	if calls.Load() != 1 {
		t.Errorf("%d attempts, want 1", calls.Load())
	}
	if err := <-failed; !plugin.IsPermanent(err) {
		t.Errorf("OnFailure got %v", err)
	}
}

func TestCloseAbandonsAHungDelivery(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	var drops atomic.Int32
	d := New([]Route{{Kind: "hung", On: filter(t, "failure"), Notifier: notifyFunc(func(ctx context.Context, _ notifiers.Message) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})}}, Options{QueueSize: 1, CloseTimeout: time.Millisecond, OnDrop: func(string) { drops.Add(1) }})
	d.Start(context.Background())
	ctx := context.Background()
	d.Observe(ctx, rotator.Event{Policy: "p", Result: rotator.ResultFailed})
	<-entered
	d.Observe(ctx, rotator.Event{Policy: "p", Result: rotator.ResultFailed}) // queued
	d.Observe(ctx, rotator.Event{Policy: "p", Result: rotator.ResultFailed}) // queue full: dropped
	d.Close()
	// The full queue dropped one; Close abandoned the one in flight and the
	// one queued.
	if n := drops.Load(); n != 3 {
		t.Errorf("%d drops, want 3", n)
	}
	d.Observe(ctx, rotator.Event{Policy: "p", Result: rotator.ResultFailed})
	if n := drops.Load(); n != 4 {
		t.Errorf("an event observed after Close was not dropped (drops=%d)", n)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	t.Parallel()
	var drops atomic.Int32
	d := New([]Route{{Kind: "k", On: filter(t, "failure"), Notifier: notifyFunc(func(context.Context, notifiers.Message) error { return nil })}},
		Options{OnDrop: func(string) { drops.Add(1) }})
	d.Observe(context.Background(), rotator.Event{Policy: "p", Result: rotator.ResultFailed})
	d.Close()
	d.Close()
	if drops.Load() != 1 {
		t.Errorf("drops = %d, want 1", drops.Load())
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	d := New(nil, Options{BaseDelay: time.Second, MaxDelay: 8 * time.Second})
	for attempt := 1; attempt <= 40; attempt++ {
		want := min(time.Second<<min(attempt-1, 30), 8*time.Second)
		for range 20 {
			got := d.backoffs().Delay(attempt)
			if got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, want/2, want)
			}
		}
	}
}
