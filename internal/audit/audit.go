// Package audit writes the audit trail of rotations: one JSON object per
// line for every event the engine emits (rotator.Event), appended to a
// local file that only the service user can read.
//
// The record carries ids, masked key ids, sink versions, step, result,
// timing and error text; never a secret value. Its fields are listed
// explicitly (Record), so a field added to rotator.Event does not reach the
// audit file until it is added here on purpose.
//
// Durability: each line is written with one write(2) on a file opened with
// O_APPEND before Record returns, so it survives the process's death at
// once. A line that announces an act (a started record), ends a rotation
// or reports a failure is also fsynced before Record returns, and with it
// every line written before it (mustSync); the other lines (ok and waiting
// results of steps) are made durable by the next such line, Reopen or
// Close, so a power loss can take only those of rotations in flight.
// Concurrent rotations share fsyncs: one covers every line written before
// it started.
//
// A line is never torn: when a write fails or is short (a full disk, a
// file size limit), the file is truncated back to its size before the
// write, and Record returns the error. The engine calls Record
// synchronously and stops a rotation before its next irreversible step
// when it fails, so that no key is committed, deactivated or revoked
// without a trace.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// SchemaVersion is the value of the "v" field of every record. It changes
// only when a field is renamed or removed or changes meaning.
const SchemaVersion = 1

// Record is one line of the audit file. the README ("Audit file")
// documents every field.
type Record struct {
	Version    int               `json:"v"`
	Time       time.Time         `json:"time"`
	Host       string            `json:"host"`
	Instance   string            `json:"instance,omitempty"`
	Policy     string            `json:"policy"`
	RotationID string            `json:"rotation_id"`
	Generation int64             `json:"generation"`
	Step       rotator.Step      `json:"step"`
	Result     rotator.Result    `json:"result"`
	NewKeyID   string            `json:"new_key_id,omitempty"`
	OldKeyID   string            `json:"old_key_id,omitempty"`
	Sinks      map[string]string `json:"sinks,omitempty"`
	DurationNS int64             `json:"duration_ns,omitempty"`
	Error      string            `json:"error,omitempty"`
	Manual     bool              `json:"manual,omitempty"`
	// Reason is "compromised" for an emergency rotation, Note the
	// operator's -reason text.
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
	// ExpiresAt is the key's expiry on expiring and expired records.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Labels are the policy's labels.
	Labels map[string]string `json:"labels,omitempty"`
}

// NewRecord builds the audit record of e. Key ids are masked again
// (secret.Mask is idempotent), so an id the engine forgot to mask is still
// not written whole.
func NewRecord(host string, e rotator.Event) Record {
	r := Record{
		Version:    SchemaVersion,
		Time:       e.Time.UTC(),
		Host:       host,
		Policy:     e.Policy,
		RotationID: e.RotationID,
		Generation: e.Generation,
		Step:       e.Step,
		Result:     e.Result,
		DurationNS: int64(e.Duration),
		Error:      e.Error,
		Manual:     e.Manual,
		Reason:     e.Reason,
		Note:       e.Note,
		Labels:     e.Labels,
	}
	if !e.ExpiresAt.IsZero() {
		r.ExpiresAt = e.ExpiresAt.UTC()
	}
	if e.NewKeyID != "" {
		r.NewKeyID = secret.Mask(e.NewKeyID)
	}
	if e.OldKeyID != "" {
		r.OldKeyID = secret.Mask(e.OldKeyID)
	}
	if len(e.Sinks) > 0 {
		r.Sinks = make(map[string]string, len(e.Sinks))
		for k, v := range e.Sinks {
			r.Sinks[k] = v
		}
	}
	return r
}

// Log appends each event to an audit file: as the engine's synchronous
// recorder (Record) or as an observer (Observe). It is safe for
// concurrent use.
type Log struct {
	path     string
	host     string
	instance string
	// OnError, if set before the first write, is called with each write
	// that failed; the daemon logs it and counts it.
	OnError func(error)

	mu sync.Mutex
	f  appendFile
	// written counts the lines written to f (guarded by mu); synced is
	// the count known durable (guarded by syncMu, taken before mu).
	written uint64
	syncMu  sync.Mutex
	synced  uint64
}

// mustSync reports whether e's line must be durable before Record
// returns: every record but the ok and waiting results of a step that
// does not end the rotation. A started record always is, so the file
// holds every act (an irreversible one above all) before it happens.
func mustSync(e rotator.Event) bool {
	switch e.Result {
	case rotator.ResultOK, rotator.ResultWaiting:
		switch e.Step {
		case rotator.StepDone, rotator.StepRolledBack, rotator.StepFailed:
			return true
		}
		return false
	}
	return true
}

// appendFile is the part of *os.File the log uses; tests replace it to
// inject failures.
type appendFile interface {
	Write([]byte) (int, error)
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

var _ rotator.Observer = (*Log)(nil)

// Open opens (creating it with mode 0600 if needed) the audit file at path
// for appending. An existing file that group or others can read or write,
// or that belongs to another user, is refused with an error naming the
// fix.
func Open(path string) (*Log, error) {
	host, _ := os.Hostname()
	l := &Log{path: path, host: host}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l.f = f
	return l, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	if err := harden.CheckFile(path, harden.FileOptions{Secret: true}); err != nil {
		f.Close()
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return f, nil
}

// SetInstance names the instance in every later record (several
// instances sharing a journal); call it before the first write.
func (l *Log) SetInstance(name string) { l.instance = name }

// Path returns the file's path.
func (l *Log) Path() string { return l.path }

// Record appends e as one JSON line, and fsyncs the file when e must be
// durable at once (mustSync; see the package documentation). The line is
// written whole or not at all: after a failed or short write the file is
// cut back to its previous size. An error means the event is not recorded
// (or, for a line that must be durable, not durably); the caller must not
// take the next irreversible step.
func (l *Log) Record(_ context.Context, e rotator.Event) error {
	rec := NewRecord(l.host, e)
	rec.Instance = l.instance
	line, err := json.Marshal(rec)
	if err != nil {
		return l.fail(fmt.Errorf("encoding audit record: %w", err))
	}
	line = append(line, '\n')
	seq, err := l.write(line)
	if err != nil || !mustSync(e) {
		return err
	}
	return l.syncTo(seq)
}

// write appends line and returns its sequence number.
func (l *Log) write(line []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, l.fail(fmt.Errorf("writing audit log %s: %w", l.path, os.ErrClosed))
	}
	fi, err := l.f.Stat()
	if err != nil {
		return 0, l.fail(fmt.Errorf("writing audit log %s: %w", l.path, err))
	}
	n, err := l.f.Write(line)
	if err == nil && n != len(line) {
		err = io.ErrShortWrite
	}
	if err != nil {
		werr := fmt.Errorf("writing audit log %s: %w", l.path, err)
		if n > 0 {
			if terr := l.f.Truncate(fi.Size()); terr != nil {
				werr = errors.Join(werr, fmt.Errorf("removing the partial line (%d of %d bytes) from %s: %w", n, len(line), l.path, terr))
			}
		}
		return 0, l.fail(werr)
	}
	l.written++
	return l.written, nil
}

// syncTo makes the lines up to seq durable. One fsync covers every line
// written before it, so a caller whose line an fsync of another caller
// already covered returns at once.
func (l *Log) syncTo(seq uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= seq {
		return nil
	}
	l.mu.Lock()
	f, upTo := l.f, l.written
	l.mu.Unlock()
	if f == nil {
		return l.fail(fmt.Errorf("syncing audit log %s: %w", l.path, os.ErrClosed))
	}
	if err := f.Sync(); err != nil {
		return l.fail(fmt.Errorf("syncing audit log %s: %w", l.path, err))
	}
	l.synced = upTo
	return nil
}

// Observe appends e like Record, for callers that only observe; a failed
// write is reported to OnError.
func (l *Log) Observe(ctx context.Context, e rotator.Event) { _ = l.Record(ctx, e) }

func (l *Log) fail(err error) error {
	if l.OnError != nil {
		l.OnError(err)
	}
	return err
}

// Reopen closes and reopens the file at the same path, for log rotation
// tools that move the file away (call it on SIGHUP).
func (l *Log) Reopen() error {
	f, err := openFile(l.path)
	if err != nil {
		return err
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old == nil {
		return nil
	}
	return errors.Join(l.syncOld(old), old.Close())
}

// syncOld makes the lines written to old, the file being replaced or
// closed, durable; syncMu is held.
func (l *Log) syncOld(old appendFile) error {
	l.mu.Lock()
	upTo := l.written
	l.mu.Unlock()
	if l.synced >= upTo {
		return nil
	}
	if err := old.Sync(); err != nil {
		return l.fail(fmt.Errorf("syncing audit log %s: %w", l.path, err))
	}
	l.synced = upTo
	return nil
}

// Close makes every line durable and closes the file. Events observed
// after Close are reported to OnError and dropped.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	f := l.f
	l.f = nil
	l.mu.Unlock()
	if f == nil {
		return nil
	}
	return errors.Join(l.syncOld(f), f.Close())
}
