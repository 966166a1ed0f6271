package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/rekeyhq/rekey/rotator"
)

// diskFile is an appendFile that keeps a ledger of what a power loss
// would keep: the bytes written (the page cache) and the prefix made
// durable by Sync.
type diskFile struct {
	mu      sync.Mutex
	data    []byte
	durable int
	syncs   int
	failing bool
	closed  bool
}

func (f *diskFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append(f.data, p...)
	return len(p), nil
}
func (f *diskFile) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sizeInfo(len(f.data)), nil
}
func (f *diskFile) Truncate(n int64) error {
	f.mu.Lock()
	f.data = f.data[:n]
	f.mu.Unlock()
	return nil
}
func (f *diskFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return syscall.EIO
	}
	f.syncs++
	f.durable = len(f.data)
	return nil
}
func (f *diskFile) Close() error { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

// survives returns what a power loss now would leave of the file.
func (f *diskFile) survives() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.data[:f.durable])
}

// rotationEvents are the events of a complete rotation with revocation, in
// the engine's order.
func rotationEvents(id string) []rotator.Event {
	var evs []rotator.Event
	for _, s := range []struct {
		step rotator.Step
		res  rotator.Result
	}{
		{rotator.StepCreate, rotator.ResultStarted}, {rotator.StepCreate, rotator.ResultOK},
		{rotator.StepStage, rotator.ResultOK}, {rotator.StepTest, rotator.ResultOK},
		{rotator.StepPromote, rotator.ResultOK}, {rotator.StepVerify, rotator.ResultOK},
		{rotator.StepCommit, rotator.ResultStarted}, {rotator.StepCommit, rotator.ResultOK},
		{rotator.StepSoak, rotator.ResultWaiting},
		{rotator.StepDeactivate, rotator.ResultStarted}, {rotator.StepDeactivate, rotator.ResultOK},
		{rotator.StepRevoke, rotator.ResultStarted}, {rotator.StepRevoke, rotator.ResultOK},
		{rotator.StepDone, rotator.ResultOK},
	} {
		evs = append(evs, rotator.Event{Policy: "p", RotationID: id, Step: s.step, Result: s.res})
	}
	return evs
}

// TestStartedLinesAreDurableBeforeRecordReturns: a started line (an act
// about to happen, irreversible ones above all) and the line ending a
// rotation are on disk, with every line before them, when Record returns;
// the ok lines between them share those fsyncs; Close makes the rest
// durable.
func TestStartedLinesAreDurableBeforeRecordReturns(t *testing.T) {
	f := &diskFile{}
	l := &Log{path: "audit.log", host: "h", f: f}
	evs := rotationEvents("rot-1")
	for i, ev := range evs {
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if ev.Result == rotator.ResultStarted || ev.Step == rotator.StepDone {
			if got := bytes.Count(f.survives(), []byte("\n")); got != i+1 {
				t.Fatalf("after %s/%s a power loss keeps %d of %d lines", ev.Step, ev.Result, got, i+1)
			}
		}
	}
	if f.syncs >= len(evs) || f.syncs < 5 {
		t.Fatalf("%d fsyncs for %d lines: want one per started line and one for done", f.syncs, len(evs))
	}
	if err := l.Record(context.Background(), rotator.Event{Policy: "p", RotationID: "rot-2", Step: rotator.StepCreate, Result: rotator.ResultOK}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Count(f.survives(), []byte("\n")); got != len(evs)+1 || !f.closed {
		t.Fatalf("after Close a power loss keeps %d of %d lines (closed %v)", got, len(evs)+1, f.closed)
	}
}

// TestFailedSyncRefusesTheStartedLine: when the fsync of a started line
// fails, Record reports it, so that the engine does not act.
func TestFailedSyncRefusesTheStartedLine(t *testing.T) {
	f := &diskFile{failing: true}
	var reported []error
	l := &Log{path: "audit.log", host: "h", f: f, OnError: func(err error) { reported = append(reported, err) }}
	ok := rotator.Event{Policy: "p", RotationID: "r", Step: rotator.StepVerify, Result: rotator.ResultOK}
	if err := l.Record(context.Background(), ok); err != nil {
		t.Fatalf("an ok line, written but not yet synced: %v", err)
	}
	started := rotator.Event{Policy: "p", RotationID: "r", Step: rotator.StepRevoke, Result: rotator.ResultStarted}
	if err := l.Record(context.Background(), started); !errors.Is(err, syscall.EIO) || len(reported) != 1 {
		t.Fatalf("Record of a started line whose fsync failed = %v (reported %v)", err, reported)
	}
	f.failing = false
	if err := l.Record(context.Background(), started); err != nil || len(f.survives()) != len(f.data) {
		t.Fatalf("Record once fsync works = %v; durable %d of %d bytes", err, len(f.survives()), len(f.data))
	}
}

// TestConcurrentRotationsShareFsyncs: lines of concurrent rotations are
// each durable when their Record returns, and fsyncs are shared.
func TestConcurrentRotationsShareFsyncs(t *testing.T) {
	f := &diskFile{}
	l := &Log{path: "audit.log", host: "h", f: f}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for r := range 8 {
				id := fmt.Sprintf("rot-%d-%d", g, r)
				ev := rotator.Event{Policy: "p", RotationID: id, Step: rotator.StepCommit, Result: rotator.ResultStarted}
				if err := l.Record(context.Background(), ev); err != nil {
					errs <- err
					return
				}
				if !bytes.Contains(f.survives(), []byte(`"rotation_id":"`+id+`"`)) {
					errs <- fmt.Errorf("the started line of %s is not durable when Record returns", id)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := bytes.Count(f.survives(), []byte("\n")); n != 64 || f.syncs > 64 {
		t.Fatalf("%d durable lines, %d fsyncs", n, f.syncs)
	}
}
