package policies

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcled"
)

// WriteDiagnostics renders diags for a terminal. Each starts with a
// FILE:LINE:COL header (the form editors and CI annotators jump to),
// followed by the source snippet taken from files (Loader.Files; nil renders
// without snippets) and the detail. Detail text is not wrapped; color adds
// ANSI highlighting.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	for _, d := range diags {
		var buf bytes.Buffer
		if err := hcl.NewDiagnosticTextWriter(&buf, files, 0, color).WriteDiagnostic(d); err != nil {
			return err
		}
		if d.Subject != nil {
			r := d.Subject
			if _, err := fmt.Fprintf(w, "%s:%d:%d: ", r.Filename, r.Start.Line, r.Start.Column); err != nil {
				return err
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// DiagnosticsJSON renders diags in the shape of `terraform validate
// -json`, so that editors and CI annotators that read that format read
// rekey's too:
//
//	{"format_version":"1.0","valid":false,"error_count":1,"warning_count":0,
//	 "diagnostics":[{"severity":"error","summary":"...","detail":"...",
//	   "range":{"filename":"a.hcl","start":{"line":3,"column":11,"byte":42},"end":{...}},
//	   "snippet":{"context":"policy \"x\"","code":"...","start_line":3,
//	     "highlight_start_offset":10,"highlight_end_offset":15,"values":[]}}]}
//
// range and snippet are left out for a diagnostic without a source
// position; snippet also when files (Loader.Files) lacks the file.
func DiagnosticsJSON(files map[string]*hcl.File, diags hcl.Diagnostics) ([]byte, error) {
	out := jsonOutput{FormatVersion: "1.0", Diagnostics: []jsonDiagnostic{}}
	for _, d := range diags {
		jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		switch d.Severity {
		case hcl.DiagError:
			out.ErrorCount++
		case hcl.DiagWarning:
			out.WarningCount++
			jd.Severity = "warning"
		}
		if d.Subject != nil {
			r := *d.Subject
			jd.Range = &jsonRange{Filename: r.Filename, Start: jsonPos(r.Start), End: jsonPos(r.End)}
			if f := files[r.Filename]; f != nil && f.Bytes != nil {
				jd.Snippet = snippet(f, d)
			}
		}
		out.Diagnostics = append(out.Diagnostics, jd)
	}
	out.Valid = out.ErrorCount == 0
	return json.MarshalIndent(out, "", "  ")
}

type jsonOutput struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *jsonRange   `json:"range,omitempty"`
	Snippet  *jsonSnippet `json:"snippet,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
	Values               []any   `json:"values"`
}

// snippet follows terraform's views/json.NewDiagnostic: the whole source
// lines covering the context range (or the subject), the name of the
// enclosing block, and the subject's offsets within the code.
func snippet(f *hcl.File, d *hcl.Diagnostic) *jsonSnippet {
	hl := *d.Subject
	ctxRange := hl
	if d.Context != nil {
		ctxRange = hcl.RangeOver(*d.Context, hl)
	}
	s := &jsonSnippet{StartLine: ctxRange.Start.Line, Values: []any{}}
	if c := hcled.ContextString(f, hl.Start.Byte-1); c != "" {
		s.Context = &c
	}
	var (
		code      strings.Builder
		codeStart = -1
	)
	sc := hcl.NewRangeScanner(f.Bytes, hl.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if line.Overlaps(ctxRange) || (ctxRange.Empty() && line.ContainsPos(ctxRange.Start)) {
			if codeStart < 0 {
				codeStart = line.Start.Byte
			}
			code.Write(line.SliceBytes(f.Bytes))
			code.WriteByte('\n')
		}
	}
	s.Code = strings.TrimSuffix(code.String(), "\n")
	if codeStart < 0 {
		codeStart = 0
	}
	start := hl.Start.Byte - codeStart
	end := start + (hl.End.Byte - hl.Start.Byte)
	s.HighlightStartOffset = min(max(start, 0), len(s.Code))
	s.HighlightEndOffset = min(max(end, 0), len(s.Code))
	return s
}
