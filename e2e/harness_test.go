package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	_ "github.com/rekeyhq/rekey/internal/standard"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// harness is one test's world: its directory, its policy source, and
// everything the code under test said (log lines, events, errors). When
// the test ends, every secret the test learned is searched for in all of
// them and in the journal file (see checkLeaks).
type harness struct {
	t   testing.TB
	dir string
	ctx context.Context
	log zerolog.Logger
	// src is the configuration every start loads.
	src string
	// observers are added to every engine started after they are set.
	observers []rotator.Observer

	logs syncBuffer
	// quiet (benchmarks) discards logs and skips the leak check.
	quiet bool

	mu       sync.Mutex
	events   []rotator.Event
	errs     []string
	secrets  map[string]string // value -> what it is
	keyIDs   map[string]string // key id -> what it is; shown only masked outside the journal
	journals map[string]bool
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, dir: t.TempDir(), secrets: map[string]string{}, keyIDs: map[string]string{}, journals: map[string]bool{}}
	h.log = zerolog.New(&h.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	ctx, cancel := context.WithTimeout(h.log.WithContext(context.Background()), 3*time.Minute)
	h.ctx = ctx
	t.Cleanup(h.checkLeaks) // registered first: runs last, after every engine and server stopped
	t.Cleanup(cancel)
	return h
}

// newQuietHarness is a harness for benchmarks: no log output, no leak
// check (the tests do that), so that neither grows with b.N.
func newQuietHarness(b *testing.B) *harness {
	h := newHarness(b)
	h.quiet = true
	h.log = zerolog.Nop()
	h.ctx = h.log.WithContext(h.ctx)
	return h
}

// secret records a value that must appear nowhere rekey writes.
func (h *harness) secret(what, value string) {
	if value == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.secrets[value]; !ok {
		h.secrets[value] = what
	}
}

// keyID records a key id that may appear only masked in logs, events and
// errors (the journal holds it in full).
func (h *harness) keyID(what, id string) {
	if id == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.keyIDs[id]; !ok {
		h.keyIDs[id] = what
	}
}

// note records an error's text for the leak check.
func (h *harness) note(errs ...error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			h.errs = append(h.errs, err.Error())
		}
	}
}

func (h *harness) observe(_ context.Context, ev rotator.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

// eventLog returns the events so far.
func (h *harness) eventLog() []rotator.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rotator.Event(nil), h.events...)
}

// writeFile writes a file into the test's directory and returns its path.
func (h *harness) writeFile(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// proc is one rekey "process": the configuration loaded anew, the journal
// opened (and locked), an engine with its policies, connections started.
type proc struct {
	cfg  *policies.Config
	e    *rotator.Engine
	stop func()
}

// start loads h.src and starts an engine over the test's journal with the
// given failpoints. A crashed proc must be stopped before the next start,
// as the exit of a crashed process releases its journal lock.
func (h *harness) start(failpoints map[string]string) *proc {
	h.t.Helper()
	path := filepath.Join(h.dir, "rekey.hcl")
	cfg, diags := policies.NewLoader().LoadSources(map[string][]byte{path: []byte(h.src)})
	if diags.HasErrors() {
		h.t.Fatalf("loading the configuration: %s\n%s", diags.Error(), h.src)
	}
	if cfg.StateDir == "" {
		h.t.Fatal("the configuration sets no state_dir")
	}
	j, err := rotator.OpenBoltJournal(cfg.StateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.journals[filepath.Join(cfg.StateDir, rotator.JournalFile)] = true
	h.mu.Unlock()
	if failpoints == nil {
		failpoints = map[string]string{}
	}
	obs := append([]rotator.Observer{rotator.ObserverFunc(h.observe)}, h.observers...)
	e, err := rotator.New(rotator.Options{Journal: j, Logger: h.log, Observers: obs, Failpoints: failpoints})
	if err != nil {
		h.t.Fatal(err)
	}
	e.SetPolicies(cfg.Policies)
	ctx, cancel := context.WithCancel(h.ctx)
	for _, c := range cfg.Connections.All() {
		if s, ok := c.(plugin.Starter); ok {
			if err := s.Start(ctx); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	var once sync.Once
	p := &proc{cfg: cfg, e: e}
	p.stop = func() {
		once.Do(func() {
			cancel()
			h.note(cfg.Connections.Close())
			h.note(j.Close())
		})
	}
	h.t.Cleanup(p.stop)
	return p
}

// rotate runs an on-demand rotation until it is done (or fails).
func (h *harness) rotate(p *proc, policy string) rotator.Outcome {
	h.t.Helper()
	out, err := p.e.Rotate(h.ctx, policy, rotator.RotateOptions{UntilDone: true})
	h.note(out.Err, err)
	if err != nil {
		h.t.Fatalf("Rotate(%s): %v", policy, err)
	}
	return out
}

// state returns the journaled state of a policy.
func (h *harness) state(p *proc, policy string) rotator.PolicyState {
	h.t.Helper()
	states, err := p.e.States(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, s := range states {
		if s.Policy == policy {
			return s
		}
	}
	h.t.Fatalf("no journal entry for %s", policy)
	return rotator.PolicyState{}
}

// checkLeaks searches every log line, event, error and journal file for
// every secret the test learned, and logs, events and errors for every
// unmasked key id.
func (h *harness) checkLeaks() {
	h.t.Helper()
	if h.quiet {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	said := map[string]string{"log output": h.logs.String()}
	for i, ev := range h.events {
		b, err := json.Marshal(ev)
		if err != nil {
			h.t.Errorf("marshalling event: %v", err)
		}
		said[fmt.Sprintf("event %d (%s %s)", i, ev.Step, ev.Result)] = string(b)
	}
	for i, e := range h.errs {
		said[fmt.Sprintf("error %d", i)] = e
	}
	stored := map[string]string{}
	for path := range h.journals {
		b, err := os.ReadFile(path)
		if err != nil {
			h.t.Errorf("reading the journal: %v", err)
		}
		stored["journal file "+filepath.Base(path)] = string(b)
	}
	all := map[string]string{}
	for k, v := range said {
		all[k] = v
	}
	for k, v := range stored {
		all[k] = v
	}
	for _, l := range findLeaks(all, h.secrets) {
		h.t.Error("secret leaked: " + l)
	}
	for _, l := range findLeaks(said, h.keyIDs) {
		h.t.Error("unmasked key id: " + l)
	}
	if testing.Verbose() {
		h.t.Logf("leak check: %d secrets and %d key ids searched in %d log bytes, %d events, %d errors, %d journal files",
			len(h.secrets), len(h.keyIDs), len(said["log output"]), len(h.events), len(h.errs), len(stored))
	}
}

// findLeaks returns, for each value of needles found in a text, what the
// value is and where it was found; never the value itself.
func findLeaks(texts, needles map[string]string) []string {
	var out []string
	for value, what := range needles {
		if len(value) < 8 {
			continue // too short to search without false alarms; no real secret is
		}
		for name, text := range texts {
			if strings.Contains(text, value) {
				out = append(out, fmt.Sprintf("%s found in %s", what, name))
			}
		}
	}
	sort.Strings(out)
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stepsOf returns "step/result" for each event, in order.
func stepsOf(evs []rotator.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, string(ev.Step)+"/"+string(ev.Result))
	}
	return out
}

// hasEvent reports whether evs holds an event of step with result.
func hasEvent(evs []rotator.Event, step rotator.Step, res rotator.Result) bool {
	for _, ev := range evs {
		if ev.Step == step && ev.Result == res {
			return true
		}
	}
	return false
}

// errText returns err's text or "".
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
