package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/control"
	"github.com/rekeyhq/rekey/rotator"
)

// TestControlAPI exercises the control socket's HTTP API with httptest,
// over a real engine: status, plan, rotate (streamed events and outcome)
// and the errors a client maps back to sentinels.
func TestControlAPI(t *testing.T) {
	e := newTestEngine(t, testConfig(t, ""))
	srv := httptest.NewServer((&control.Server{Engine: e}).Handler())
	defer srv.Close()

	post := func(body string) *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/rotate", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	errorReply := func(resp *http.Response) (string, string) {
		t.Helper()
		defer resp.Body.Close()
		var r struct{ Error, Code string }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r.Error, r.Code
	}

	resp := post(`{"policies":["p"]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("rotate: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var steps []string
	var outcome *control.Outcome
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m control.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if m.Event != nil {
			if m.Event.Policy != "p" {
				t.Fatalf("event of another policy: %+v", m.Event)
			}
			steps = append(steps, string(m.Event.Step))
		}
		if m.Outcome != nil {
			outcome = m.Outcome
		}
	}
	resp.Body.Close()
	if outcome == nil || outcome.Policy != "p" || outcome.RotationID == "" || outcome.Result == "rolled_back" || outcome.Result == "failed" {
		t.Fatalf("outcome: %+v (steps %v)", outcome, steps)
	}
	for _, want := range []string{"create", "stage", "promote", "commit"} {
		if !strings.Contains(strings.Join(steps, " "), want) {
			t.Errorf("no %s event streamed: %v", want, steps)
		}
	}

	resp, err := http.Get(srv.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st []rotator.PolicyStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if len(st) != 1 || st[0].Policy != "p" || st[0].Generation != 1 || st[0].CurrentKey == "" {
		t.Fatalf("status after rotate: %+v", st)
	}

	resp, err = http.Get(srv.URL + "/v1/plan?policy=p")
	if err != nil {
		t.Fatal(err)
	}
	var plan []rotator.PlanEntry
	if err := json.NewDecoder(resp.Body).Decode(&plan); err != nil || resp.StatusCode != 200 || len(plan) != 1 || plan[0].Due {
		t.Fatalf("plan: %d %v %+v", resp.StatusCode, err, plan)
	}
	resp.Body.Close()

	resp, err = http.Get(srv.URL + "/v1/plan?policy=nope")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("plan of an unknown policy: %d", resp.StatusCode)
	}
	if msg, code := errorReply(resp); code != control.CodeUnknownPolicy || !strings.Contains(msg, "nope") {
		t.Fatalf("plan of an unknown policy: %q %q", msg, code)
	}

	resp = post(`{"policies":["p","nope"]}`)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("rotate of an unknown policy: %d", resp.StatusCode)
	}
	if _, code := errorReply(resp); code != control.CodeUnknownPolicy {
		t.Fatalf("rotate of an unknown policy: code %q", code)
	}
	if s, _ := e.Status(context.Background()); s[0].Generation != 1 {
		t.Fatalf("a request naming an unknown policy rotated the known one: %+v", s)
	}

	resp = post(`{"policies":`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d", resp.StatusCode)
	}
	resp.Body.Close()

	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/status", bytes.NewReader(nil))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE /v1/status: %d", resp.StatusCode)
	}
}

// newTestEngine is an engine over an in-memory journal with the policies
// of the configuration in dir (see testConfig), with a fresh ledger; the
// connections close when the test ends.
func newTestEngine(t *testing.T, dir string) *rotator.Engine {
	t.Helper()
	resetLedger(t)
	cfg, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Connections.Close() })
	e, err := rotator.New(rotator.Options{Journal: rotator.NewMemJournal(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPolicies(cfg.Policies)
	return e
}
