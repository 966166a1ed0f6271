// Package journaltest is the test suite every rotator.Journal back end
// passes: the embedded bbolt journal, the in-memory journal and the etcd
// journal run the same checks.
package journaltest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/rekeyhq/rekey/rotator"
)

// Open returns a new, empty journal for one test; it closes it with
// t.Cleanup where it needs closing.
type Open func(t *testing.T) rotator.Journal

// Run runs the suite against journals made by open.
func Run(t *testing.T, open Open) {
	t.Run("GetUpdateList", func(t *testing.T) { getUpdateList(t, open(t)) })
	t.Run("FailedUpdateStoresNothing", func(t *testing.T) { failedUpdate(t, open(t)) })
	t.Run("ConcurrentUpdatesLoseNothing", func(t *testing.T) { concurrent(t, open(t)) })
	t.Run("RecordsRoundTrip", func(t *testing.T) { roundTrip(t, open(t)) })
}

func getUpdateList(t *testing.T, j rotator.Journal) {
	ctx := context.Background()
	if _, ok, err := j.Get(ctx, "a"); ok || err != nil {
		t.Fatalf("Get on empty journal = %v, %v", ok, err)
	}
	if all, err := j.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("List on empty journal = %v, %v", all, err)
	}
	st, err := j.Update(ctx, "a", func(st *rotator.PolicyState) error {
		if st.Policy != "a" {
			return fmt.Errorf("a new state names policy %q, want a", st.Policy)
		}
		st.Generation = 3
		st.Active = &rotator.Record{ID: "r", Step: rotator.StepPromote}
		return nil
	})
	if err != nil || st.Generation != 3 || st.Policy != "a" {
		t.Fatalf("Update = %+v, %v", st, err)
	}
	for _, name := range []string{"c", "b", "a/b", "ab"} {
		if _, err := j.Update(ctx, name, func(*rotator.PolicyState) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	all, err := j.List(ctx)
	if err != nil || len(all) != 5 {
		t.Fatalf("List = %v, %v", all, err)
	}
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.Policy
	}
	if !sort.StringsAreSorted(names) {
		t.Fatalf("List is not sorted by policy: %v", names)
	}
	if _, ok, err := j.Get(ctx, "a/"); ok || err != nil {
		t.Fatalf("Get of a prefix of a stored name = %v, %v", ok, err)
	}
}

func failedUpdate(t *testing.T, j rotator.Journal) {
	ctx := context.Background()
	if _, err := j.Update(ctx, "a", func(st *rotator.PolicyState) error {
		st.Generation = 3
		st.Active = &rotator.Record{ID: "r", Step: rotator.StepPromote}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := j.Update(ctx, "a", func(st *rotator.PolicyState) error { st.Generation = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	if _, err := j.Update(ctx, "new", func(st *rotator.PolicyState) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	st, ok, err := j.Get(ctx, "a")
	if !ok || err != nil || st.Generation != 3 || st.Active == nil || st.Active.Step != rotator.StepPromote || st.Policy != "a" {
		t.Fatalf("after failed update: %+v %v %v", st, ok, err)
	}
	if _, ok, err := j.Get(ctx, "new"); ok || err != nil {
		t.Fatalf("a failed first update stored the policy: %v %v", ok, err)
	}
}

func concurrent(t *testing.T, j rotator.Journal) {
	ctx := context.Background()
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error { st.Generation++; return nil }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, _, err := j.Get(ctx, "p")
	if err != nil || st.Generation != workers*each {
		t.Fatalf("generation after %d increments = %d, %v", workers*each, st.Generation, err)
	}
}

func roundTrip(t *testing.T, j rotator.Journal) {
	ctx := context.Background()
	rec := rotator.Record{ID: "rot-1", Generation: 7, Step: rotator.StepDrain, NewKeyID: "key-new", OldKeyIDs: []string{"key-old"},
		Sinks: map[string]rotator.SinkRecord{"file:/x": {PrevRead: true}}, Promoted: true}
	if _, err := j.Update(ctx, "p", func(st *rotator.PolicyState) error {
		st.CurrentKeyID = "key-new"
		st.Retired = []string{"key-old"}
		st.Active = &rec
		st.History = []rotator.Record{{ID: "rot-0", Result: "done"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := j.Get(ctx, "p")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	a := st.Active
	if st.CurrentKeyID != "key-new" || len(st.Retired) != 1 || a == nil || a.ID != "rot-1" || a.Step != rotator.StepDrain ||
		!a.Promoted || !a.Sinks["file:/x"].PrevRead || len(st.History) != 1 || st.History[0].Result != "done" {
		t.Fatalf("read back %+v (active %+v)", st, a)
	}
}
