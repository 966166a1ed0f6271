package rotator

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Reconcile advances every policy whose journal holds an unfinished
// rotation: before commit it is rolled back, after commit it continues from
// the journaled step (drain timers count from the journaled commit time).
func (e *Engine) Reconcile(ctx context.Context) error {
	states, err := e.journal.List(ctx)
	if err != nil {
		return err
	}
	for _, st := range states {
		if st.Active == nil {
			continue
		}
		if _, ok := e.Policy(st.Policy); !ok {
			e.log.Warn().Str("policy", st.Policy).Str("rotation_id", st.Active.ID).Str("step", string(st.Active.Step)).
				Msg("the journal holds an unfinished rotation of a policy that is no longer configured; restore the policy to finish it")
			continue
		}
		e.log.Info().Str("policy", st.Policy).Str("rotation_id", st.Active.ID).Str("step", string(st.Active.Step)).Msg("reconciling unfinished rotation")
		if _, err := e.reconcile(ctx, st.Policy); err != nil {
			e.log.Error().Err(err).Str("policy", st.Policy).Msg("reconciling failed")
		}
	}
	e.logNext(ctx)
	return nil
}

// logNext logs, for every configured policy, what happens next and when:
// after a restart the operator sees backoff, stuck and due times at once.
func (e *Engine) logNext(ctx context.Context) {
	states, err := e.states(ctx, e.listHot)
	if err != nil {
		return
	}
	now := e.now()
	for _, st := range states {
		p, ok := e.Policy(st.Policy)
		if !ok {
			continue
		}
		n := NextFor(p, st, Facts{}, now)
		lg := e.log.Info()
		if n.State == NextStuck {
			lg = e.log.Warn()
		}
		lg = lg.Str("policy", p.Name).Str("next", n.State)
		if !n.At.IsZero() {
			lg = lg.Time("at", n.At)
		}
		lg.Str("reason", n.Reason).Msg("next")
	}
}

// Alive reports whether the scheduler loop turned recently; the service's
// watchdog pings only while it does.
func (e *Engine) Alive() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.lastLoop.IsZero() && time.Since(e.lastLoop) < 3*heartbeat
}

// Trigger asks the scheduler to look at every policy again now.
func (e *Engine) Trigger() {
	e.kickMu.Lock()
	e.kickAll = true
	e.kickMu.Unlock()
	e.wakeUp()
}

// TriggerPolicy asks the scheduler to look at one policy again now, and at
// no other: a manual rotation changes only its own policy's next time.
func (e *Engine) TriggerPolicy(name string) {
	e.kickMu.Lock()
	if e.kicked == nil {
		e.kicked = map[string]bool{}
	}
	e.kicked[name] = true
	e.kickMu.Unlock()
	e.wakeUp()
}

func (e *Engine) wakeUp() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// takeKicks returns whether every policy was asked for, and otherwise the
// policies asked for, since the last call.
func (e *Engine) takeKicks() (all bool, names []string) {
	e.kickMu.Lock()
	defer e.kickMu.Unlock()
	all, e.kickAll = e.kickAll, false
	for n := range e.kicked {
		names = append(names, n)
	}
	clear(e.kicked)
	return all, names
}

const heartbeat = 10 * time.Second

// MaxConcurrent bounds the rotations the scheduler runs at once.
const MaxConcurrent = 8

// Run is the daemon's scheduler: a timer queue keyed by each policy's next
// due or wake time, not a poll of every policy. Policies run concurrently
// (one rotation per policy at a time). Call Reconcile first. Run returns
// when ctx is cancelled, after the rotations in flight reached a safe
// point: before commit they are rolled back, after commit they are parked
// in the journal and resumed at the next start.
func (e *Engine) Run(ctx context.Context) error {
	q := &timerQueue{index: map[string]int{}}
	for _, n := range e.PolicyNames() {
		q.set(n, e.now())
	}
	type result struct {
		name string
		next time.Time
	}
	results := make(chan result)
	running := map[string]bool{}
	sem := make(chan struct{}, MaxConcurrent)
	// waiting counts the policies started that wait for their lock,
	// held elsewhere: they do not count against MaxConcurrent.
	var waiting atomic.Int32
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		e.mu.Lock()
		e.lastLoop = time.Now()
		e.mu.Unlock()
		// At most MaxConcurrent policies are advanced at once; the others
		// wait in the queue, not in goroutines (10,000 policies due at
		// start would be 10,000 goroutines, whose memory the runtime keeps).
		if d, ok := q.next(); ok && len(running)-int(waiting.Load()) < MaxConcurrent {
			timer.Reset(max(0, d.Sub(e.now())))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
		case <-e.wake:
			all, names := e.takeKicks()
			if all {
				q = &timerQueue{index: map[string]int{}}
				names = e.PolicyNames()
			}
			for _, n := range names {
				if _, ok := e.Policy(n); ok && !running[n] {
					q.set(n, e.now())
				}
			}
		case res := <-results:
			delete(running, res.name)
			if _, ok := e.Policy(res.name); ok {
				q.set(res.name, res.next)
			}
		case <-timer.C:
			now := e.now()
			for {
				it, ok := q.peek()
				if !ok || it.at.After(now) || len(running)-int(waiting.Load()) >= MaxConcurrent {
					break
				}
				heap.Pop(q)
				delete(q.index, it.name)
				if running[it.name] {
					continue
				}
				running[it.name] = true
				wg.Add(1)
				go func(name string) {
					defer wg.Done()
					out, err := e.advanceSlot(ctx, name, sem, &waiting)
					if ctx.Err() != nil {
						return
					}
					next := out.Next
					if err != nil {
						e.log.Error().Err(err).Str("policy", name).Msg("advancing policy")
						next = e.now().Add(e.opts.RecheckInterval)
					}
					if next.IsZero() || out.Result == OutcomeDone {
						next = e.now()
					}
					if out.Result == OutcomeStuck && (out.Next.IsZero() || !out.Next.After(e.now())) {
						next = e.now().Add(24 * time.Hour)
					}
					select {
					case results <- result{name, next}:
					case <-ctx.Done():
					}
				}(it.name)
			}
		}
	}
}

type queued struct {
	name string
	at   time.Time
}

// timerQueue is a min-heap of policies by next wake time, one entry per
// policy.
type timerQueue struct {
	items []queued
	index map[string]int
}

func (q *timerQueue) Len() int           { return len(q.items) }
func (q *timerQueue) Less(i, j int) bool { return q.items[i].at.Before(q.items[j].at) }
func (q *timerQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.index[q.items[i].name] = i
	q.index[q.items[j].name] = j
}
func (q *timerQueue) Push(x any) {
	it := x.(queued)
	q.index[it.name] = len(q.items)
	q.items = append(q.items, it)
}
func (q *timerQueue) Pop() any {
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return it
}

func (q *timerQueue) set(name string, at time.Time) {
	if i, ok := q.index[name]; ok {
		q.items[i].at = at
		heap.Fix(q, i)
		return
	}
	heap.Push(q, queued{name, at})
}

func (q *timerQueue) peek() (queued, bool) {
	if len(q.items) == 0 {
		return queued{}, false
	}
	return q.items[0], true
}

func (q *timerQueue) next() (time.Time, bool) {
	it, ok := q.peek()
	return it.at, ok
}
