package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/rotator"
)

// TestReloadClosesReplacedConnections: every reload starts the new
// configuration's connections and closes the old ones (their renewal loop
// stopped, Close called once), instead of leaving one set running per
// SIGHUP until exit. Plugins and connections log through the daemon's
// logger.
func TestReloadClosesReplacedConnections(t *testing.T) {
	resetLedger(t)
	r := startDaemon(t, testConfig(t, ""), Options{})
	waitFor(t, "the first rotation", r.settled, r.logs)
	for i := 1; i <= 3; i++ {
		r.d.Reload()
		waitFor(t, fmt.Sprintf("reload %d to close the old connections", i), func() bool {
			l := led.get()
			return l.started == i+1 && l.closed == i && l.running == 1
		}, r.logs)
	}
	for _, want := range []string{"daemontest connection renewing", "daemontest probe checked", "configuration reloaded"} {
		if !r.logHas(want) {
			t.Errorf("the daemon log lacks %q:\n%s", want, r.logs)
		}
	}
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil
	if l := led.get(); l.running != 0 || l.closed != 4 || len(l.violations) > 0 {
		t.Fatalf("after shutdown: %+v", l)
	}
}

// TestRotationInFlightKeepsItsGeneration: a reload during a rotation
// leaves the connections that rotation uses open until it finishes, then
// closes them.
func TestRotationInFlightKeepsItsGeneration(t *testing.T) {
	resetLedger(t)
	led.setBlock(true)
	r := startDaemon(t, testConfig(t, ""), Options{})
	select {
	case <-led.entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("the rotation never reached its probe:\n%s", r.logs)
	}
	r.d.Reload()
	waitFor(t, "the reload", func() bool { return r.logHas("configuration reloaded") && led.get().started == 2 }, r.logs)
	if l := led.get(); l.closed != 0 {
		t.Fatalf("the old connection was closed under the rotation using it: %+v", l)
	}
	led.unblock()
	waitFor(t, "the old generation to close once its rotation finished", func() bool {
		l := led.get()
		return l.closed == 1 && l.running == 1
	}, r.logs)
	if l := led.get(); len(l.violations) > 0 {
		t.Fatal(l.violations)
	}
}

// TestShutdownWaitsForRotationsInFlight: on shutdown the daemon waits for
// a rotation whose call hangs (saying so every ShutdownWarning) and
// closes its connections and journal only after it returned; the journal
// then records the rollback.
func TestShutdownWaitsForRotationsInFlight(t *testing.T) {
	resetLedger(t)
	led.setBlock(true)
	dir := testConfig(t, "")
	r := startDaemon(t, dir, Options{ShutdownWarning: 50 * time.Millisecond})
	select {
	case <-led.entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("the rotation never reached its probe:\n%s", r.logs)
	}
	r.stop()
	waitFor(t, "the shutdown to say it waits", func() bool {
		return strings.Count(r.logs.String(), "have not reached a safe point yet") >= 3
	}, r.logs)
	select {
	case err := <-r.done:
		t.Fatalf("Run returned (%v) while a rotation was still running", err)
	default:
	}
	if l := led.get(); l.closed != 0 {
		t.Fatalf("connections closed under a running rotation: %+v", l)
	}
	led.unblock()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return after the rotation finished:\n%s", r.logs)
	}
	if l := led.get(); l.closed != 1 || l.running != 0 || len(l.violations) > 0 {
		t.Fatalf("after shutdown: %+v", l)
	}
	j, err := rotator.OpenBoltJournal(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	st, _, err := j.Get(context.Background(), "p")
	if err != nil || st.Active != nil || st.LastResult != "rolled_back" {
		t.Fatalf("journal after shutdown: %+v %v\n%s", st, err, r.logs)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestJournalDeletedWhileRunning: the daemon notices that its journal
// file was deleted, stops scheduling, says so at error level, fails
// /readyz, sets rekey_journal_ok to 0 and writes a rescue copy; the next
// start refuses the lost journal, and starts again from the rescue copy.
func TestJournalDeletedWhileRunning(t *testing.T) {
	resetLedger(t)
	addr := freeAddr(t)
	dir := testConfig(t, fmt.Sprintf("server {\n  listen = %q\n}\n", addr))
	r := startDaemon(t, dir, Options{JournalCheck: 20 * time.Millisecond})
	waitFor(t, "the first rotation", r.settled, r.logs)
	if code, _ := httpGet(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz before: %d", code)
	}
	state := filepath.Join(dir, "state")
	if err := os.Remove(filepath.Join(state, rotator.JournalFile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loss to be noticed", func() bool { return r.logHas("JOURNAL LOST") }, r.logs)
	if !strings.Contains(r.logs.String(), `"level":"error"`) {
		t.Fatalf("the loss was not logged at error level:\n%s", r.logs)
	}
	code, body := httpGet(t, "http://"+addr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "journal lost") {
		t.Fatalf("/readyz after the loss: %d %s", code, body)
	}
	if _, body := httpGet(t, "http://"+addr+"/metrics"); !strings.Contains(body, "rekey_journal_ok 0") {
		t.Fatalf("metrics after the loss lack rekey_journal_ok 0")
	}
	waitFor(t, "the engine's scheduler to stop", func() bool { return !r.d.Engine().Alive() || r.logHas("rescued_journal") }, r.logs)
	c := control.Dial(state)
	if c == nil {
		t.Fatal("the control socket does not answer after the loss")
	}
	_, serr := c.Status(context.Background())
	_, perr := c.Plan(context.Background(), nil)
	for name, err := range map[string]error{"status": serr, "plan": perr} {
		if !errors.Is(err, rotator.ErrJournalLost) {
			t.Fatalf("%s through the socket after the loss: %v", name, err)
		}
		for _, want := range []string{"stopped scheduling", "was deleted while rekey was running", rotator.JournalFile + ".rescued-", "rekey journal recover", "start the daemon again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s after the loss does not say %q: %v", name, want, err)
			}
		}
	}
	r.stop()
	err := <-r.done
	r.done <- err
	if !errors.Is(err, rotator.ErrJournalLost) {
		t.Fatalf("Run after the loss: %v", err)
	}

	cfg, _ := loadConfig(dir)
	d2, _ := New(cfg, Options{Logger: r.d.log})
	if err := d2.Run(context.Background()); !errors.Is(err, rotator.ErrJournalLost) || !strings.Contains(err.Error(), "rekey journal recover") {
		t.Fatalf("a start with the journal lost: %v", err)
	}
	cfg.Connections.Close()

	rescued, _ := filepath.Glob(filepath.Join(state, rotator.JournalFile+".rescued-*"))
	if len(rescued) != 1 {
		t.Fatalf("rescue copies: %v", rescued)
	}
	if err := os.Rename(rescued[0], filepath.Join(state, rotator.JournalFile)); err != nil {
		t.Fatal(err)
	}
	r3 := startDaemon(t, dir, Options{})
	st, err := r3.d.Engine().Status(context.Background())
	if err != nil || len(st) != 1 || st[0].Generation != 1 {
		t.Fatalf("status from the rescued journal: %+v %v", st, err)
	}
}

// TestReloadRejectedLogsEachProblem: an invalid configuration on reload is
// rejected as a whole, the last good one keeps running, and the log has one
// line per problem with its FILE:LINE:COL, not the rendered diagnostics
// folded into one escaped string.
func TestReloadRejectedLogsEachProblem(t *testing.T) {
	resetLedger(t)
	dir := testConfig(t, "")
	r := startDaemon(t, dir, Options{})
	waitFor(t, "the first rotation", r.settled, r.logs)
	cfg := filepath.Join(dir, "rekey.hcl")
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), `every = "1h"`, `evrey = "1h"`, 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r.d.Reload()
	waitFor(t, "the reload to be rejected", func() bool { return strings.Count(r.logs.String(), `"message":"reload rejected"`) == 2 }, r.logs)
	var summary int
	problems := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.logs.String()), "\n") {
		var e struct {
			Level, Message, At, Problem, Detail, Error string
			Problems                                   int
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case strings.HasPrefix(e.Message, "reload rejected: the configuration is invalid"):
			summary = e.Problems
			if e.Error != "" {
				t.Errorf("the summary line carries the rendered diagnostics: %q", e.Error)
			}
		case e.Message == "reload rejected":
			if e.Level != "error" || strings.Contains(e.Detail, "\n") {
				t.Errorf("problem line: %s", line)
			}
			problems[e.Problem] = e.At
		}
	}
	if summary != 2 {
		t.Errorf("summary line says %d problems, want 2:\n%s", summary, r.logs)
	}
	line := strings.Count(bad[:strings.Index(bad, "evrey")], "\n") + 1
	if at := problems["Unsupported argument"]; at != fmt.Sprintf("%s:%d:3", cfg, line) {
		t.Errorf("Unsupported argument at %q, want %s:%d:3", at, cfg, line)
	}
	if at, ok := problems["Missing schedule"]; !ok || !strings.HasPrefix(at, cfg+":") {
		t.Errorf("Missing schedule at %q (found %v)", at, ok)
	}
	if r.logHas("configuration reloaded") {
		t.Fatalf("the invalid configuration was taken:\n%s", r.logs)
	}
	if err := os.WriteFile(cfg, good, 0o600); err != nil {
		t.Fatal(err)
	}
	r.d.Reload()
	waitFor(t, "the good configuration to be taken again", func() bool { return r.logHas("configuration reloaded") }, r.logs)
}
