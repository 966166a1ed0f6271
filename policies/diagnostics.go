package policies

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcled"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// WriteDiagnostics renders diags for a terminal. Each starts with a
// FILE:LINE:COL header (the form editors and CI annotators jump to),
// followed by the source snippet taken from files (Loader.Files; nil renders
// without snippets) and the detail. Detail text is not wrapped; color adds
// ANSI highlighting.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	for _, d := range diags {
		var buf bytes.Buffer
		shownFiles, shown := clipSnippet(files, d)
		if err := hcl.NewDiagnosticTextWriter(&buf, shownFiles, 0, color).WriteDiagnostic(shown); err != nil {
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
			shownFiles, shown := clipSnippet(files, d)
			if f := shownFiles[r.Filename]; f != nil && f.Bytes != nil {
				jd.Snippet = snippet(f, shown)
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

// maxSnippetLine is the longest source line shown whole in a snippet.
const maxSnippetLine = 240

// maxDetail bounds the text of a diagnostic, which may quote a value.
const maxDetail = 2000

func clipText(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:cut], len(s)-cut)
}

// clipSnippet returns files and d unchanged when the source lines d shows
// are short. Otherwise it returns a stand-in file holding only a window of
// the subject's line (blank lines above keep the line number), and d with
// its subject moved into that window and no context, so that a diagnostic
// about a megabyte-long line prints a few hundred bytes of it.
func clipSnippet(files map[string]*hcl.File, d *hcl.Diagnostic) (map[string]*hcl.File, *hcl.Diagnostic) {
	if len(d.Detail) > maxDetail || len(d.Summary) > maxDetail {
		c := *d
		c.Summary, c.Detail = clipText(d.Summary), clipText(d.Detail)
		d = &c
	}
	if d.Subject == nil {
		return files, d
	}
	f := files[d.Subject.Filename]
	if f == nil || f.Bytes == nil {
		return files, d
	}
	src := f.Bytes
	r := *d.Subject
	if d.Context != nil {
		r = hcl.RangeOver(*d.Context, r)
	}
	from, to := min(max(r.Start.Byte, 0), len(src)), min(max(r.End.Byte, 0), len(src))
	from = bytes.LastIndexByte(src[:from], '\n') + 1
	if i := bytes.IndexByte(src[to:], '\n'); i >= 0 {
		to += i
	} else {
		to = len(src)
	}
	long := false
	for rest := src[from:to]; len(rest) > 0 && !long; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest)
		}
		long = i > maxSnippetLine
		rest = rest[min(i+1, len(rest)):]
	}
	if !long {
		return files, d
	}
	s0 := min(max(d.Subject.Start.Byte, 0), len(src))
	lineStart := bytes.LastIndexByte(src[:s0], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[s0:], '\n'); i >= 0 {
		lineEnd = s0 + i
	}
	s1 := min(max(d.Subject.End.Byte, s0), lineEnd, s0+maxSnippetLine/2)
	winStart := max(lineStart, s0-maxSnippetLine/4)
	winEnd := min(lineEnd, s1+maxSnippetLine/4)
	for winStart > lineStart && !utf8.RuneStart(src[winStart]) {
		winStart--
	}
	for winEnd < lineEnd && !utf8.RuneStart(src[winEnd]) {
		winEnd++
	}
	var b bytes.Buffer
	line := d.Subject.Start.Line
	b.Write(bytes.Repeat([]byte{'\n'}, max(line-1, 0)))
	if winStart > lineStart {
		b.WriteString("...")
	}
	at := b.Len()
	b.Write(src[winStart:winEnd])
	if winEnd < lineEnd {
		b.WriteString("...")
	}
	start := hcl.Pos{Line: line, Column: at - (line - 1) + s0 - winStart + 1, Byte: at + s0 - winStart}
	end := hcl.Pos{Line: line, Column: start.Column + s1 - s0, Byte: start.Byte + s1 - s0}
	clipped := *d
	clipped.Subject = &hcl.Range{Filename: d.Subject.Filename, Start: start, End: end}
	clipped.Context = nil
	clipped.Expression = nil
	clipped.EvalContext = nil
	return map[string]*hcl.File{d.Subject.Filename: {Bytes: b.Bytes(), Body: &hclsyntax.Body{}}}, &clipped
}

// LoadError is a configuration that did not load. Error returns the
// diagnostics as WriteDiagnostics renders them; Problems has each one on its
// own, for a log that shows one line per problem.
type LoadError struct {
	Text     string
	Problems []Problem
}

// Problem is one diagnostic of a LoadError.
type Problem struct {
	Error   bool   // an error; otherwise a warning
	At      string // FILE:LINE:COL, empty for a problem without a position
	Summary string
	Detail  string
}

func (e *LoadError) Error() string { return e.Text }

// NewLoadError renders diags, with snippets from files (Loader.Files), as a
// LoadError.
func NewLoadError(files map[string]*hcl.File, diags hcl.Diagnostics) *LoadError {
	var buf bytes.Buffer
	_ = WriteDiagnostics(&buf, files, diags, false)
	e := &LoadError{Text: strings.TrimRight(buf.String(), "\n")}
	for _, d := range diags {
		p := Problem{Error: d.Severity == hcl.DiagError, Summary: d.Summary, Detail: d.Detail}
		if r := d.Subject; r != nil {
			p.At = fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
		}
		e.Problems = append(e.Problems, p)
	}
	return e
}
