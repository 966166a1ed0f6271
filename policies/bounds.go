package policies

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Input bounds. A policy file is a few kilobytes written by a person; these
// limits are far above that, and low enough that no file can make loading
// slow, exhaust memory or overflow the stack (the HCL parser recurses once
// per nesting level). They are checked on the raw bytes, before parsing.
const (
	// MaxFileSize is the largest policy file read, in bytes: some 400
	// policies. Parsing costs about 1 s of CPU per MiB, so the bound also
	// keeps any single file's validation well under a second.
	MaxFileSize = 256 << 10
	// MaxNesting bounds how deeply brackets, braces, parentheses
	// (including function calls), strings inside ${...} and template
	// directives may nest, and how long a chain of unary operators (!, -)
	// or conditionals (a ? b : c ? ...) one expression may hold.
	MaxNesting = 64
	// MaxListLength bounds the items of one list, object, block body or
	// call's arguments.
	MaxListLength = 1000
	// MaxItemsPerFile bounds the list, object and argument items of a
	// whole file: converting a list costs time quadratic in its length.
	MaxItemsPerFile = 10000
	// MaxStringLength bounds one quoted string or heredoc, in bytes.
	MaxStringLength = 64 << 10
	// MaxTokenLength bounds one name or number, in bytes.
	MaxTokenLength = 1024
)

// scanBounds checks src against the input bounds before it is parsed. It
// reads the HCL lexical structure only as far as it needs to: comments,
// quoted strings with their escapes and ${...} / %{...} sequences, and
// heredocs. Where it cannot tell, it counts conservatively (a '-' before
// another '-' counts as unary). It reports at most one problem per file:
// after the first, the rest of the file is not parsed anyway.
func scanBounds(name string, src []byte) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Policy file too large",
			Detail:   fmt.Sprintf("%s is larger than %d bytes (256 KiB), the most a policy file may have. Split the configuration into several files.", name, MaxFileSize),
			Subject:  &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	s := &boundScan{name: name, src: src, line: 1, col: 1}
	s.run()
	return s.diags
}

type frameKind uint8

const (
	frameCode    frameKind = iota // inside ( [ { or ${ %{
	frameString                   // inside "..."
	frameHeredoc                  // inside <<EOF ... EOF
)

type frame struct {
	kind   frameKind
	closer byte // for frameCode: ')', ']' or '}'
	// marker ends a heredoc; "end" marks a %{endif} or %{endfor}.
	marker string
	start  hcl.Pos
	items  int
	filled bool // something since the last item separator
	// block is true for the body of a block, whose items (attributes and
	// blocks) cost nothing like list items and do not count for the file.
	block bool
}

type boundScan struct {
	name  string
	src   []byte
	i     int
	line  int
	col   int
	stack []frame
	items int
	unary int
	conds int
	tmpl  int // open %{if}/%{for} directives
	diags hcl.Diagnostics
	prev  byte // the last byte of code that is not a space or comment
}

func (s *boundScan) pos() hcl.Pos { return hcl.Pos{Line: s.line, Column: s.col, Byte: s.i} }

func (s *boundScan) fail(at hcl.Pos, summary, detail string) {
	end := at
	if end.Byte < len(s.src) {
		end.Byte++
		end.Column++
	}
	s.diags = append(s.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  &hcl.Range{Filename: s.name, Start: at, End: end},
	})
}

// advance moves past one byte, keeping line and column.
func (s *boundScan) advance() {
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else if s.src[s.i]&0xC0 != 0x80 {
		s.col++
	}
	s.i++
}

func (s *boundScan) has(prefix string) bool {
	return len(s.src)-s.i >= len(prefix) && string(s.src[s.i:s.i+len(prefix)]) == prefix
}

func (s *boundScan) depth() int { return len(s.stack) + s.tmpl }

func (s *boundScan) push(f frame) bool {
	f.start = s.pos()
	s.stack = append(s.stack, f)
	if s.depth() > MaxNesting {
		s.fail(f.start, "Nesting too deep", fmt.Sprintf("Brackets, braces, parentheses, function calls and templates are nested more than %d levels deep here. A policy never needs this much; flatten the expression.", MaxNesting))
		return false
	}
	return true
}

func (s *boundScan) top() *frame {
	if len(s.stack) == 0 {
		return nil
	}
	return &s.stack[len(s.stack)-1]
}

// item records an item separator (a comma, or a line break in braces).
func (s *boundScan) item() bool {
	f := s.top()
	if f == nil || !f.filled {
		return true
	}
	f.filled = false
	f.items++
	if !f.block {
		s.items++
	}
	if f.items > MaxListLength {
		s.fail(f.start, "List too long", fmt.Sprintf("This list, object, block or call has more than %d items, the most one may have.", MaxListLength))
		return false
	}
	if s.items > MaxItemsPerFile {
		s.fail(s.pos(), "Too many items", fmt.Sprintf("This file holds more than %d list, object and argument items in all, the most one file may have. Split the configuration into several files.", MaxItemsPerFile))
		return false
	}
	return true
}

func (s *boundScan) fill() {
	if f := s.top(); f != nil {
		f.filled = true
	}
}

func (s *boundScan) run() {
	for s.i < len(s.src) && len(s.diags) == 0 {
		f := s.top()
		switch {
		case f == nil || f.kind == frameCode:
			s.code()
		case f.kind == frameString:
			s.str()
		default:
			s.heredoc()
		}
	}
	if len(s.diags) == 0 {
		if f := s.top(); f != nil && f.kind != frameCode {
			if n := s.i - f.start.Byte; n > MaxStringLength {
				s.fail(f.start, "String too long", stringTooLong())
			}
		}
	}
}

func stringTooLong() string {
	return fmt.Sprintf("This string is longer than %d bytes (64 KiB), the most a string may have. Keep large values in a file and name it with a *_file option or file(\"...\").", MaxStringLength)
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// code scans one token of HCL expressions or structure.
func (s *boundScan) code() {
	c := s.src[s.i]
	f := s.top()
	if c != '!' && c != '-' && c != ' ' && c != '\t' && c != '\r' {
		s.unary = 0
	}
	switch {
	case c == '#' || s.has("//"):
		for s.i < len(s.src) && s.src[s.i] != '\n' {
			s.advance()
		}
		return
	case s.has("/*"):
		for s.i < len(s.src) && !s.has("*/") {
			s.advance()
		}
		if s.i < len(s.src) {
			s.advance()
			s.advance()
		}
		return
	case c == '\n':
		if f == nil || f.closer == '}' {
			s.conds = 0
			if !s.item() {
				return
			}
		}
	case c == ',':
		if !s.item() {
			return
		}
	case c == '(' || c == '[' || c == '{':
		s.fill()
		closer := map[byte]byte{'(': ')', '[': ']', '{': '}'}[c]
		block := c == '{' && !strings.ContainsRune("=:([,?{", rune(s.prev))
		s.prev = c
		s.advance()
		s.conds = 0
		s.push(frame{kind: frameCode, closer: closer, block: block})
		return
	case c == ')' || c == ']' || c == '}':
		if f != nil && f.kind == frameCode && f.closer == c {
			if f.marker == "end" && s.tmpl > 0 {
				s.tmpl--
			}
			s.stack = s.stack[:len(s.stack)-1]
		}
		s.conds = 0
		s.fill()
	case c == '"':
		s.fill()
		s.prev = c
		s.advance()
		s.push(frame{kind: frameString})
		return
	case s.has("<<"):
		s.fill()
		s.prev = '"'
		s.openHeredoc()
		return
	case c == '?':
		s.conds++
		if s.conds > MaxNesting {
			s.fail(s.pos(), "Expression too complex", fmt.Sprintf("This expression chains more than %d conditionals (a ? b : c); flatten it.", MaxNesting))
			return
		}
	case c == '!' || c == '-':
		s.unary++
		if s.unary > MaxNesting {
			s.fail(s.pos(), "Expression too complex", fmt.Sprintf("More than %d operators ! or - follow each other here; write the value directly.", MaxNesting))
			return
		}
	case isNameByte(c):
		start := s.pos()
		s.prev = 'a'
		for s.i < len(s.src) && isNameByte(s.src[s.i]) {
			if s.i-start.Byte >= MaxTokenLength {
				s.fail(start, "Name too long", fmt.Sprintf("A name or number here is longer than %d bytes.", MaxTokenLength))
				return
			}
			s.advance()
		}
		s.fill()
		return
	case c != ' ' && c != '\t' && c != '\r':
		s.fill()
	}
	if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
		s.prev = c
	}
	s.advance()
}

// openHeredoc handles "<<" or "<<-" followed by a marker and a line break;
// anything else is left to the parser.
func (s *boundScan) openHeredoc() {
	start := s.pos()
	j := s.i + 2
	if j < len(s.src) && s.src[j] == '-' {
		j++
	}
	k := j
	for k < len(s.src) && isNameByte(s.src[k]) {
		k++
	}
	if k == j || k-j > MaxTokenLength {
		s.advance()
		s.advance()
		return
	}
	marker := string(s.src[j:k])
	if k < len(s.src) && s.src[k] == '\r' {
		k++
	}
	if k >= len(s.src) || s.src[k] != '\n' {
		s.advance()
		s.advance()
		return
	}
	for s.i <= k {
		s.advance()
	}
	if s.push(frame{kind: frameHeredoc, marker: marker}) {
		s.top().start = start
	}
}

// template handles "${", "%{" and their escapes "$${", "%%{" inside a
// string or heredoc; it reports whether it consumed input.
func (s *boundScan) template() bool {
	switch {
	case s.has("$${") || s.has("%%{"):
		s.advance()
		s.advance()
		s.advance()
		return true
	case s.has("${"):
		s.advance()
		s.advance()
		s.push(frame{kind: frameCode, closer: '}'})
		return true
	case s.has("%{"):
		s.advance()
		s.advance()
		j := s.i
		for j < len(s.src) && (s.src[j] == '~' || s.src[j] == ' ' || s.src[j] == '\t') {
			j++
		}
		word := ""
		for k := j; k < len(s.src) && k-j < 8 && isNameByte(s.src[k]); k++ {
			word = string(s.src[j : k+1])
		}
		if !s.push(frame{kind: frameCode, closer: '}'}) {
			return true
		}
		switch word {
		case "if", "for":
			s.tmpl++
			if s.depth() > MaxNesting {
				s.fail(s.pos(), "Nesting too deep", fmt.Sprintf("Template directives are nested more than %d levels deep here; flatten the template.", MaxNesting))
			}
		case "endif", "endfor":
			s.top().marker = "end"
		}
		return true
	}
	return false
}

func (s *boundScan) str() {
	f := s.top()
	if s.i-f.start.Byte > MaxStringLength {
		s.fail(f.start, "String too long", stringTooLong())
		return
	}
	switch c := s.src[s.i]; {
	case c == '\\':
		s.advance()
		if s.i < len(s.src) {
			s.advance()
		}
	case c == '"':
		s.advance()
		s.stack = s.stack[:len(s.stack)-1]
	case c == '\n':
		// An unterminated string: the parser reports it; continue as code.
		s.stack = s.stack[:len(s.stack)-1]
	case s.template():
	default:
		s.advance()
	}
}

func (s *boundScan) heredoc() {
	f := s.top()
	if s.i-f.start.Byte > MaxStringLength {
		s.fail(f.start, "String too long", stringTooLong())
		return
	}
	if s.col == 1 {
		j := s.i
		for j < len(s.src) && (s.src[j] == ' ' || s.src[j] == '\t') {
			j++
		}
		end := j + len(f.marker)
		if end <= len(s.src) && string(s.src[j:end]) == f.marker && (end == len(s.src) || s.src[end] == '\n' || s.src[end] == '\r') {
			for s.i < end {
				s.advance()
			}
			s.stack = s.stack[:len(s.stack)-1]
			return
		}
	}
	if !s.template() {
		s.advance()
	}
}

// readPolicyFile reads a policy file, or its first MaxFileSize+1 bytes
// when it is larger, which scanBounds then refuses.
func readPolicyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

// sanitizeSource returns src with every byte that could act on a terminal
// (control characters other than tab and line breaks, C1 controls, bidi
// overrides) and every invalid UTF-8 byte replaced by '?', so that
// snippets never echo escape sequences. Byte offsets stay valid.
func sanitizeSource(src []byte) []byte {
	var out []byte
	set := func(i, n int) {
		if out == nil {
			out = append([]byte(nil), src...)
		}
		for k := i; k < i+n; k++ {
			out[k] = '?'
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f || (c == '\r' && (i+1 >= len(src) || src[i+1] != '\n')) {
				set(i, 1)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 || unsafeRune(r) {
			set(i, n)
		}
		i += n
	}
	if out == nil {
		return src
	}
	return out
}

func unsafeRune(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0xfeff
}
