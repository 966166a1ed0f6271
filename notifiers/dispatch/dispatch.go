// Package dispatch delivers engine events to the configured notifiers. A
// Dispatcher is a rotator.Observer: Observe maps the event to an event name
// (EventName), and for every route that wants it, puts a Message in that
// route's bounded queue and returns at once. One worker goroutine per route,
// owned by the Dispatcher, delivers the queue in order and retries failed
// deliveries with exponential backoff and jitter. A full queue drops the
// message and reports it (OnDrop, for the rekey_notifications_failed_total
// metric): a failing notifier never blocks a rotation.
//
// It lives apart from package notifiers because it depends on the engine's
// event type, and the engine depends on the loader, which depends on
// notifiers.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// Defaults of Options.
const (
	DefaultQueueSize    = 64
	DefaultMaxAttempts  = 5
	DefaultBaseDelay    = 2 * time.Second
	DefaultMaxDelay     = time.Minute
	DefaultCloseTimeout = 10 * time.Second
)

// Route sends the events of one policy that its filter selects to one
// notifier: one notify block.
type Route struct {
	// Policy whose events are sent; "" sends the events of every policy.
	Policy string
	// Kind is the notifier kind, for metrics and logs.
	Kind string
	// On selects the event names sent.
	On notifiers.Filter
	// Notifier delivers.
	Notifier notifiers.Notifier
}

// Options tune a Dispatcher. Zero values mean the defaults.
type Options struct {
	// QueueSize bounds each route's queue.
	QueueSize int
	// MaxAttempts bounds the deliveries of one message (first try
	// included).
	MaxAttempts int
	// BaseDelay is the delay before the first retry; it doubles with each
	// retry up to MaxDelay, and a random jitter of up to half of it is
	// taken off.
	BaseDelay, MaxDelay time.Duration
	// CloseTimeout bounds how long Close waits for queued messages to be
	// delivered before it abandons them.
	CloseTimeout time.Duration
	// Hostname is put in every message; default os.Hostname().
	Hostname string
	// OnDrop is called when a message is dropped because its route's queue
	// is full or the dispatcher is closing.
	OnDrop func(kind string)
	// OnFailure is called when a message could not be delivered: a
	// permanent error, or the last attempt failed.
	OnFailure func(kind string, m notifiers.Message, err error)
}

// Dispatcher is a rotator.Observer that delivers events to notifiers.
type Dispatcher struct {
	opts   Options
	routes []*route

	mu      sync.RWMutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type route struct {
	Route
	queue chan notifiers.Message
}

var _ rotator.Observer = (*Dispatcher)(nil)

// New returns a Dispatcher for routes. Call Start before the engine runs
// and Close when it has stopped.
func New(routes []Route, opts Options) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = DefaultBaseDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.MaxDelay < opts.BaseDelay {
		opts.MaxDelay = opts.BaseDelay
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = DefaultCloseTimeout
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	d := &Dispatcher{opts: opts}
	for _, r := range routes {
		d.routes = append(d.routes, &route{Route: r, queue: make(chan notifiers.Message, opts.QueueSize)})
	}
	return d
}

// Start starts one worker per route. Cancelling ctx abandons deliveries
// in progress and queued; Close must still be called. Start may be called
// once.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.closed {
		return
	}
	d.started = true
	ctx, d.cancel = context.WithCancel(ctx)
	for _, r := range d.routes {
		d.wg.Add(1)
		go d.work(ctx, r)
	}
}

// EventName returns the notification event name of an engine event, or
// ok=false for events that are not notified (steps starting, steps in
// progress).
func EventName(e rotator.Event) (name string, ok bool) {
	switch {
	case e.Step == rotator.StepExpiry && e.Result == rotator.ResultExpired:
		return notifiers.EventExpired, true
	case e.Step == rotator.StepExpiry && e.Result == rotator.ResultExpiring:
		return notifiers.EventExpiring, true
	case e.Step == rotator.StepWatch && e.Result == rotator.ResultFailed:
		return notifiers.EventWatchFailed, true
	case e.Result == rotator.ResultStuck:
		return notifiers.EventStuck, true
	case e.Result == rotator.ResultReactivated:
		return notifiers.EventReactivated, true
	case e.Step == rotator.StepRolledBack || e.Result == rotator.ResultRolledBack:
		return notifiers.EventRolledBack, true
	case e.Result == rotator.ResultFailed || e.Step == rotator.StepFailed:
		return notifiers.EventFailure, true
	case e.Step == rotator.StepDrain && e.Result == rotator.ResultWaiting:
		return notifiers.EventRevokePending, true
	case e.Reason == rotator.ReasonCompromised && (e.Step == rotator.StepDone || e.Step == rotator.StepRevoke || e.Result == rotator.ResultForced):
		return notifiers.EventCompromised, true
	case e.Step == rotator.StepDone && e.Result == rotator.ResultOK:
		return notifiers.EventSuccess, true
	}
	return "", false
}

// NewMessage builds the message of an event. Key ids are masked again
// (secret.Mask is idempotent) in case the event carried one whole.
func NewMessage(event, hostname string, e rotator.Event) notifiers.Message {
	m := notifiers.Message{
		ID:         newID(),
		Event:      event,
		Hostname:   hostname,
		Time:       e.Time,
		Policy:     e.Policy,
		RotationID: e.RotationID,
		Generation: e.Generation,
		Step:       string(e.Step),
		Result:     string(e.Result),
		Duration:   e.Duration,
		Error:      e.Error,
		Manual:     e.Manual,
		Reason:     e.Reason,
		Note:       e.Note,
		ExpiresAt:  e.ExpiresAt,
		Labels:     e.Labels,
	}
	if e.NewKeyID != "" {
		m.NewKeyID = secret.Mask(e.NewKeyID)
	}
	if e.OldKeyID != "" {
		m.OldKeyID = secret.Mask(e.OldKeyID)
	}
	if len(e.Sinks) > 0 {
		m.Sinks = make(map[string]string, len(e.Sinks))
		for k, v := range e.Sinks {
			m.Sinks[k] = v
		}
	}
	return m
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Observe queues the event for every route that wants it and returns
// without waiting for any delivery.
func (d *Dispatcher) Observe(_ context.Context, e rotator.Event) {
	name, ok := EventName(e)
	if !ok {
		return
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	var msg *notifiers.Message
	for _, r := range d.routes {
		if (r.Policy != "" && r.Policy != e.Policy) || !r.On.Match(name) {
			continue
		}
		if d.closed {
			d.drop(r.Kind)
			continue
		}
		if msg == nil {
			m := NewMessage(name, d.opts.Hostname, e)
			msg = &m
		}
		select {
		case r.queue <- *msg:
		default:
			d.drop(r.Kind)
		}
	}
}

func (d *Dispatcher) drop(kind string) {
	if d.opts.OnDrop != nil {
		d.opts.OnDrop(kind)
	}
}

// Close stops accepting events, waits up to Options.CloseTimeout for the
// queues to be delivered, then abandons what is left (reporting each
// abandoned message to OnDrop) and returns once every worker has stopped.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, r := range d.routes {
		close(r.queue)
	}
	started, cancel := d.started, d.cancel
	d.mu.Unlock()

	if !started {
		for _, r := range d.routes {
			for range r.queue {
				d.drop(r.Kind)
			}
		}
		return
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	t := time.NewTimer(d.opts.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	cancel()
	<-done
}

// work delivers r's queue in order until it is closed.
func (d *Dispatcher) work(ctx context.Context, r *route) {
	defer d.wg.Done()
	for m := range r.queue {
		if ctx.Err() != nil {
			d.drop(r.Kind)
			continue
		}
		if err := d.deliver(ctx, r, m); err != nil {
			if ctx.Err() != nil {
				d.drop(r.Kind)
				continue
			}
			if d.opts.OnFailure != nil {
				d.opts.OnFailure(r.Kind, m, err)
			}
		}
	}
}

// deliver tries m up to MaxAttempts times.
func (d *Dispatcher) deliver(ctx context.Context, r *route, m notifiers.Message) error {
	return retry.Do(ctx, retry.Options{
		Backoff:  d.backoffs(),
		Attempts: d.opts.MaxAttempts,
		GiveUp: func(why retry.Reason, _ int, err error) error {
			if why == retry.Interrupted {
				return errors.Join(err, ctx.Err())
			}
			return err
		},
	}, func(ctx context.Context) error { return r.Notifier.Notify(ctx, m) })
}

// backoffs is the delay after each failed attempt: BaseDelay doubled per
// attempt, capped at MaxDelay, less a random jitter of up to half.
func (d *Dispatcher) backoffs() retry.Backoff {
	return retry.Backoff{Initial: d.opts.BaseDelay, Max: d.opts.MaxDelay}
}
