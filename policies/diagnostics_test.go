package policies

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDiagnosticsJSON(t *testing.T) {
	t.Parallel()
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.Load("testdata/bad/invalid-target.hcl")
	js, err := DiagnosticsJSON(l.Files(), diags)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "format_version": "1.0",
  "valid": false,
  "error_count": 1,
  "warning_count": 0,
  "diagnostics": [
    {
      "severity": "error",
      "summary": "Invalid probe target",
      "detail": "The target \"keys\" is not known. Did you mean \"key\"? Use \"key\" (the probe tests the new key itself, before dependents are served it) or \"dependent\" (it tests that dependents work, after promotion).",
      "range": {
        "filename": "testdata/bad/invalid-target.hcl",
        "start": {
          "line": 8,
          "column": 14,
          "byte": 153
        },
        "end": {
          "line": 8,
          "column": 20,
          "byte": 159
        }
      },
      "snippet": {
        "context": "policy \"payments\"",
        "code": "    target = \"keys\"",
        "start_line": 8,
        "highlight_start_offset": 13,
        "highlight_end_offset": 19,
        "values": []
      }
    }
  ]
}`
	if string(js) != want {
		t.Errorf("got\n%s\nwant\n%s", js, want)
	}
	src := l.Files()["testdata/bad/invalid-target.hcl"]
	if got := string(src.Bytes[153:159]); got != `"keys"` {
		t.Errorf("range bytes = %q", got)
	}
}

func TestDiagnosticsJSONWarningsAndNoPosition(t *testing.T) {
	t.Parallel()
	l := NewLoader()
	_, diags := l.LoadSources(map[string][]byte{"a.hcl": []byte("state_dir = \"/x\"\n")})
	js, err := DiagnosticsJSON(l.Files(), diags)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Valid        bool `json:"valid"`
		ErrorCount   int  `json:"error_count"`
		WarningCount int  `json:"warning_count"`
		Diagnostics  []map[string]any
	}
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Valid || out.ErrorCount != 0 || out.WarningCount != 1 || len(out.Diagnostics) != 1 || out.Diagnostics[0]["severity"] != "warning" {
		t.Errorf("unexpected %s", js)
	}
	if _, ok := out.Diagnostics[0]["range"]; ok {
		t.Errorf("a diagnostic without position has a range: %s", js)
	}

	js, _ = DiagnosticsJSON(nil, nil)
	if !strings.Contains(string(js), `"diagnostics": []`) || !strings.Contains(string(js), `"valid": true`) {
		t.Errorf("empty diagnostics render as %s", js)
	}
}

func TestMultiLineSnippet(t *testing.T) {
	t.Parallel()
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.Load("testdata/bad/syntax-error.hcl")
	js, err := DiagnosticsJSON(l.Files(), diags)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Diagnostics []struct {
			Snippet struct {
				Code      string `json:"code"`
				StartLine int    `json:"start_line"`
				Start     int    `json:"highlight_start_offset"`
				End       int    `json:"highlight_end_offset"`
			} `json:"snippet"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	s := out.Diagnostics[0].Snippet
	if s.StartLine != 2 || !strings.HasPrefix(s.Code, "  every = ") || s.Start > s.End || s.End > len(s.Code) {
		t.Errorf("snippet = %+v", s)
	}
}

// TestLoadErrorKeepsEachProblem: NewLoadError renders the diagnostics as
// validate does and keeps each one, with its severity and FILE:LINE:COL,
// for the daemon's one log line per problem.
func TestLoadErrorKeepsEachProblem(t *testing.T) {
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.LoadSources(map[string][]byte{"p.hcl": []byte("policy \"p\" {\n  every = \"1h\"\n  provider \"random\" {}\n  sink \"file\" {\n    path = \"/tmp/x\"\n    colour = 1\n  }\n}\n")})
	e := NewLoadError(l.Files(), diags)
	if want := strings.TrimRight(render(t, l.Files(), diags), "\n"); e.Error() != want {
		t.Errorf("Error() = %q, want the rendered diagnostics %q", e.Error(), want)
	}
	want := map[string]Problem{
		"Unknown sink kind":                       {Error: true, At: "p.hcl:4:8"},
		"Revocation outlasts the rotation period": {Error: false, At: "p.hcl:2:11"},
	}
	for _, p := range e.Problems {
		if w, ok := want[p.Summary]; ok {
			if p.Error != w.Error || p.At != w.At || p.Detail == "" {
				t.Errorf("%s: %+v, want error=%v at %s with its detail", p.Summary, p, w.Error, w.At)
			}
			delete(want, p.Summary)
		}
	}
	if len(want) > 0 || len(e.Problems) != len(diags) {
		t.Errorf("problems %+v: missing %v", e.Problems, want)
	}
}
