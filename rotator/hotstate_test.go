package rotator

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// historyJournal opens a bbolt journal holding n policies whose entries
// carry a full history and an active rotation.
func historyJournal(tb testing.TB, n int) *BoltJournal {
	tb.Helper()
	j, err := OpenBoltJournal(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = j.Close() })
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for i := range n {
		name := fmt.Sprintf("p%05d", i)
		_, err := j.Update(context.Background(), name, func(st *PolicyState) error {
			st.Generation = historyLimit + 1
			st.CurrentKeyID, st.CurrentKeyCreated, st.LastSuccess, st.LastResult = "KEY-current", now, now, "done"
			st.Retired = []string{"KEY-retired"}
			for h := range historyLimit {
				st.History = append(st.History, Record{ID: fmt.Sprintf("rot-%d", h), Generation: int64(h + 1), Step: StepDone, Result: "done",
					StartedAt: now, FinishedAt: now, NewKeyID: fmt.Sprintf("KEY-%d", h), OldKeyIDs: []string{"KEY-old"},
					Sinks: map[string]SinkRecord{"file:/srv/app/key.env": {PrevRead: true}}})
			}
			st.Active = &Record{ID: "rot-active", Generation: historyLimit + 1, Step: StepVerify, NewKeyID: "KEY-new", StartedAt: now}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return j
}

// TestHotReadsAreFullReadsWithoutHistory: getHot and listHot return what
// Get and List return, History left out, for entries written by Update.
func TestHotReadsAreFullReadsWithoutHistory(t *testing.T) {
	j := historyJournal(t, 3)
	ctx := context.Background()
	full, err := j.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hot, err := j.listHot(ctx)
	if err != nil || len(hot) != len(full) {
		t.Fatalf("listHot = %d states, %v; List %d", len(hot), err, len(full))
	}
	for i := range full {
		if len(full[i].History) != historyLimit || hot[i].History != nil {
			t.Fatalf("history: full %d records, hot %d", len(full[i].History), len(hot[i].History))
		}
		want := full[i]
		want.History = nil
		if !reflect.DeepEqual(hot[i], want) {
			t.Fatalf("listHot differs from List beyond History:\n%+v\n%+v", hot[i], want)
		}
		one, ok, err := j.getHot(ctx, want.Policy)
		if err != nil || !ok || !reflect.DeepEqual(one, want) {
			t.Fatalf("getHot(%s) = %+v, %v, %v", want.Policy, one, ok, err)
		}
	}
	if _, ok, err := j.getHot(ctx, "absent"); ok || err != nil {
		t.Fatalf("getHot of an absent policy = %v, %v", ok, err)
	}
}

// BenchmarkReadWithHistory compares reading 1,000 journal entries that
// carry a full history with and without decoding it (Engine.Status and
// the metrics read without it).
func BenchmarkReadWithHistory(b *testing.B) {
	j := historyJournal(b, 1000)
	ctx := context.Background()
	b.Run("List", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := j.List(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("listHot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := j.listHot(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
