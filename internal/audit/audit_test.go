package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/secret"
)

// schema is the documented field set (README, "Audit file").
var schema = map[string]bool{
	"v": true, "time": true, "host": true, "policy": true, "rotation_id": true,
	"generation": true, "step": true, "result": true, "new_key_id": true,
	"old_key_id": true, "sinks": true, "duration_ns": true, "error": true, "manual": true,
}

// required are present in every record.
var required = []string{"v", "time", "host", "policy", "rotation_id", "generation", "step", "result"}

const (
	canaryValue = "CANARY-SECRET-VALUE-d41d8cd98f00b204"
	canaryKeyID = "AKIACANARYKEYID7X9Q"
)

// fakeRotation produces the events of one rotation whose new key carries a
// canary secret value. The value lives only in the key; the events are
// built the way the engine builds them, including an error that wraps the
// key's fields.
func fakeRotation(t *testing.T) []rotator.Event {
	t.Helper()
	key := plugin.Key{
		ID:        canaryKeyID,
		Value:     secret.Fields{"access_key_id": secret.New(canaryKeyID), "secret_access_key": secret.New(canaryValue)},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	rot := plugin.Rotation{ID: "rot-0001", Policy: "payments-aws", Generation: 7, StartedAt: key.CreatedAt}
	base := rotator.Event{Policy: rot.Policy, RotationID: rot.ID, Generation: rot.Generation}
	at := func(i int, step rotator.Step, res rotator.Result) rotator.Event {
		e := base
		e.Time = rot.StartedAt.Add(time.Duration(i) * time.Second)
		e.Step, e.Result = step, res
		// The engine masks key ids; the last event forgets to, on purpose.
		e.NewKeyID = secret.Mask(key.ID)
		e.OldKeyID = secret.Mask("AKIAOLDKEY0000001234")
		return e
	}
	events := []rotator.Event{
		at(0, rotator.StepCreate, rotator.ResultStarted),
		at(1, rotator.StepCreate, rotator.ResultOK),
		at(2, rotator.StepStage, rotator.ResultOK),
	}
	events[2].Sinks = map[string]string{"vault_kv:secret/payments/aws": "12"}
	events[2].Duration = 1500 * time.Millisecond
	failed := at(3, rotator.StepTest, rotator.ResultFailed)
	failed.Error = fmt.Errorf("probe aws_sts with key %v: %w", key.Value, errors.New("InvalidClientTokenId")).Error()
	rb := at(4, rotator.StepRolledBack, rotator.ResultRolledBack)
	rb.NewKeyID = key.ID // unmasked by mistake
	rb.Manual = true
	return append(events, failed, rb)
}

func TestLogWritesOneDocumentedLinePerEvent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	events := fakeRotation(t)
	for _, e := range events {
		l.Observe(context.Background(), e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, canary := range []string{canaryValue, canaryKeyID} {
		if bytes.Contains(data, []byte(canary)) {
			t.Errorf("audit file contains canary %q:\n%s", canary, data)
		}
	}

	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		for k := range m {
			if !schema[k] {
				t.Errorf("line %d has undocumented field %q", i+1, k)
			}
		}
		for _, k := range required {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks field %q", i+1, k)
			}
		}
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		e := events[i]
		if r.Version != SchemaVersion || !r.Time.Equal(e.Time) || r.Policy != e.Policy || r.RotationID != e.RotationID ||
			r.Generation != e.Generation || r.Step != e.Step || r.Result != e.Result || r.Error != e.Error || r.Manual != e.Manual {
			t.Errorf("line %d = %+v, does not match event %+v", i+1, r, e)
		}
		if r.NewKeyID != secret.Mask(canaryKeyID) {
			t.Errorf("line %d new_key_id = %q, want %q", i+1, r.NewKeyID, secret.Mask(canaryKeyID))
		}
	}
	var stage Record
	_ = json.Unmarshal([]byte(lines[2]), &stage)
	if stage.Sinks["vault_kv:secret/payments/aws"] != "12" || stage.DurationNS != int64(1500*time.Millisecond) {
		t.Errorf("stage record = %+v", stage)
	}
	if !strings.Contains(lines[3], secret.Redacted) {
		t.Errorf("error text of the failed test step should show the redaction marker: %s", lines[3])
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode = %04o, want 0600", fi.Mode().Perm())
	}
}

func TestOpenRefusesLooseFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if !errors.Is(err, harden.ErrInsecure) || !strings.Contains(err.Error(), "chmod 0600 "+path) {
		t.Fatalf("Open(0644 file) = %v, want an insecure-permissions error with the fix", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatalf("after chmod 0600: %v", err)
	}
	l.Observe(context.Background(), rotator.Event{Policy: "p", Step: rotator.StepDone, Result: rotator.ResultOK})
	l.Close()
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "earlier line\n{") {
		t.Errorf("existing content not kept, or not appended to: %q", data)
	}
}

func TestConcurrentObserveKeepsLinesWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	var errMu sync.Mutex
	l.OnError = func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Observe(context.Background(), rotator.Event{
					Policy: fmt.Sprintf("policy-%d", w), RotationID: fmt.Sprintf("%d-%d", w, i),
					Step: rotator.StepStage, Result: rotator.ResultOK,
					Error: strings.Repeat("x", 2000),
				})
			}
		}()
	}
	wg.Wait()
	l.Close()
	if len(errs) > 0 {
		t.Fatalf("write errors: %v", errs)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	var ids []string
	for s.Scan() {
		var r Record
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			t.Fatalf("interleaved or torn line: %v", err)
		}
		ids = append(ids, r.RotationID)
	}
	sort.Strings(ids)
	if len(ids) != writers*each {
		t.Errorf("%d lines, want %d", len(ids), writers*each)
	}
}

func TestObserveAfterCloseReportsError(t *testing.T) {
	t.Parallel()
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var got error
	l.OnError = func(err error) { got = err }
	l.Close()
	l.Observe(context.Background(), rotator.Event{Policy: "p"})
	if !errors.Is(got, os.ErrClosed) {
		t.Errorf("OnError got %v, want os.ErrClosed", got)
	}
}

func TestReopenFollowsLogRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Observe(context.Background(), rotator.Event{Policy: "before"})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Observe(context.Background(), rotator.Event{Policy: "after"})
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"before"`) || strings.Contains(string(old), `"after"`) || !strings.Contains(string(cur), `"after"`) {
		t.Errorf("rotated file %q, new file %q", old, cur)
	}
}
