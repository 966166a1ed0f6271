package rotator

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
)

// MemJournal is a journal held in memory. It backs read-only views when no
// journal file exists yet, and runs the same journal tests as BoltJournal.
type MemJournal struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ Journal = (*MemJournal)(nil)

// NewMemJournal returns an empty in-memory journal.
func NewMemJournal() *MemJournal { return &MemJournal{m: map[string][]byte{}} }

// Get implements Journal.
func (j *MemJournal) Get(_ context.Context, policy string) (PolicyState, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.m[policy]
	if !ok {
		return PolicyState{}, false, nil
	}
	var st PolicyState
	err := json.Unmarshal(v, &st)
	return st, true, err
}

// Update implements Journal.
func (j *MemJournal) Update(_ context.Context, policy string, fn func(*PolicyState) error) (PolicyState, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := PolicyState{Policy: policy}
	if v, ok := j.m[policy]; ok {
		if err := json.Unmarshal(v, &st); err != nil {
			return PolicyState{}, err
		}
	}
	if err := fn(&st); err != nil {
		return PolicyState{}, err
	}
	v, err := json.Marshal(st)
	if err != nil {
		return PolicyState{}, err
	}
	j.m[policy] = v
	return st, nil
}

// List implements Journal.
func (j *MemJournal) List(ctx context.Context) ([]PolicyState, error) {
	j.mu.Lock()
	names := make([]string, 0, len(j.m))
	for k := range j.m {
		names = append(names, k)
	}
	j.mu.Unlock()
	sort.Strings(names)
	out := make([]PolicyState, 0, len(names))
	for _, n := range names {
		st, _, err := j.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Close implements Journal.
func (j *MemJournal) Close() error { return nil }
