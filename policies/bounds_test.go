package policies

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adversarial returns inputs that crashed or stalled the loader before
// the bounds existed (issue 8, item 4), with the summary each must get.
func adversarial() map[string]struct {
	src     string
	summary string
} {
	const n = 100000
	policy := func(body string) string {
		return "policy \"p\" {\n  every = \"30d\"\n" + body + "\n}\n"
	}
	return map[string]struct {
		src     string
		summary string
	}{
		"brackets":              {"x = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n", "Nesting too deep"},
		"braces":                {"x = " + strings.Repeat("{", n) + strings.Repeat("}", n) + "\n", "Nesting too deep"},
		"objects":               {"x = " + strings.Repeat("{a=", n/2) + "1" + strings.Repeat("}", n/2) + "\n", "Nesting too deep"},
		"parens":                {"x = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n) + "\n", "Nesting too deep"},
		"calls":                 {"x = " + strings.Repeat("f(", n) + "\n", "Nesting too deep"},
		"blocks":                {strings.Repeat("a{", n), "Nesting too deep"},
		"interpolation":         {"x = " + strings.Repeat(`"${`, n/10) + "1" + strings.Repeat(`}"`, n/10) + "\n", "Nesting too deep"},
		"heredoc-interpolation": {"x = <<EOT\n" + strings.Repeat(`${"`, n/10) + "\nEOT\n", "Nesting too deep"},
		"directives":            {"x = \"" + strings.Repeat("%{ if true }", n/20) + strings.Repeat("%{ endif }", n/20) + "\"\n", "Nesting too deep"},
		"not":                   {"x = " + strings.Repeat("!", n) + "true\n", "Expression too complex"},
		"minus":                 {"x = " + strings.Repeat("- ", n) + "1\n", "Expression too complex"},
		"conditionals":          {"x = " + strings.Repeat("a?b:", n/2) + "1\n", "Expression too complex"},
		"command-list":          {policy(`  reload "test" {` + "\n    command = [\"a\"" + strings.Repeat(`,1`, n) + "]\n  }"), "List too long"},
		"object":                {"x = {\n" + strings.Repeat("a = 1\n", 2000) + "}\n", "List too long"},
		"items-in-file":         {strings.Repeat("x = ["+strings.Repeat(`"a",`, 999)+"]\n", 11), "Too many items"},
		"name-10MB":             {`policy "` + strings.Repeat("n", 10_000_000) + `" {}` + "\n", "Policy file too large"},
		"name-200KB":            {`policy "` + strings.Repeat("n", 200_000) + `" {}` + "\n", "String too long"},
		"heredoc-long":          {"x = <<EOT\n" + strings.Repeat("aaaaaaaaa\n", 8000) + "EOT\n", "String too long"},
		"identifier":            {strings.Repeat("a", 2000) + " = 1\n", "Name too long"},
		"number":                {"x = " + strings.Repeat("1", 2000) + "\n", "Name too long"},
	}
}

// TestInputBounds loads each adversarial file from disk: one diagnostic
// with a source position, a bounded rendering, and no crash.
func TestInputBounds(t *testing.T) {
	dir := t.TempDir()
	for name, c := range adversarial() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".hcl")
			if err := os.WriteFile(path, []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			l := &Loader{LookupEnv: testEnv, skipHostChecks: true}
			cfg, diags := l.Load(path)
			if cfg != nil || !diags.HasErrors() {
				t.Fatalf("loaded: %v", diags)
			}
			if len(diags) != 1 || diags[0].Summary != c.summary {
				t.Fatalf("want one %q, got %v", c.summary, diags)
			}
			if diags[0].Subject == nil || diags[0].Subject.Filename != path {
				t.Errorf("no position: %+v", diags[0])
			}
			var text bytes.Buffer
			if err := WriteDiagnostics(&text, l.Files(), diags, false); err != nil {
				t.Fatal(err)
			}
			js, err := DiagnosticsJSON(l.Files(), diags)
			if err != nil {
				t.Fatal(err)
			}
			if text.Len() > 2000 || len(js) > 3000 {
				t.Errorf("output of %d bytes (JSON %d):\n%s", text.Len(), len(js), text.String())
			}
		})
	}
}

// TestInputBoundsAllowRealFiles: brackets in comments, strings and
// heredocs do not count, and a deep but reasonable file loads.
func TestInputBoundsAllowRealFiles(t *testing.T) {
	src := `# ` + strings.Repeat("[{(", 200) + `
/* ` + strings.Repeat("((((", 100) + ` */
// ` + strings.Repeat("!", 200) + `
policy "p" {
  every = "30d"
  provider "test" {
    name = "` + strings.Repeat("(", 200) + `${upper(lower("x"))}"
  }
  sink "test" {
    path   = <<-EOT
      ` + strings.Repeat("[", 300) + ` %{ if true }${"{"}%{ endif } $${ %%{
      EOT
    fields = { A = "id", B = "secret" }
  }
  reload "test" {
    command = ["x"` + strings.Repeat(`, "a"`, MaxListLength-1) + `]
  }
  probe "test" {
    url = "http://127.0.0.1/?a=b"
  }
}
`
	if diags := scanBounds("ok.hcl", []byte(src)); len(diags) > 0 {
		t.Fatal(diags)
	}
	l := &Loader{LookupEnv: testEnv}
	cfg, diags := l.LoadSources(map[string][]byte{"ok.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_ = cfg.Connections.Close()

	deep := "x = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n"
	if diags := scanBounds("deep.hcl", []byte(deep)); len(diags) > 0 {
		t.Errorf("%d levels refused: %v", MaxNesting, diags)
	}
	deeper := "x = " + strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1) + "\n"
	if diags := scanBounds("deeper.hcl", []byte(deeper)); len(diags) != 1 {
		t.Errorf("%d levels: %v", MaxNesting+1, diags)
	}
	many := strings.Repeat("policy \"p\" {\n  a = 1\n  b = 2\n  c = 3\n}\n", MaxItemsPerFile/3+1)
	if diags := scanBounds("many.hcl", []byte(many)); len(diags) > 0 {
		t.Errorf("block bodies counted as list items: %v", diags)
	}
}

// TestSnippetsSanitised: escape sequences and other terminal controls in
// a policy file are never echoed raw, in text or JSON.
func TestSnippetsSanitised(t *testing.T) {
	src := "policy \"a\x1b[31mred\" {\n  every = \"\x1b]0;title\x07 \u202e \xff \r\"\n}\n"
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.LoadSources(map[string][]byte{"esc.hcl": []byte(src)})
	if !diags.HasErrors() {
		t.Fatal("loaded")
	}
	var text bytes.Buffer
	if err := WriteDiagnostics(&text, l.Files(), diags, false); err != nil {
		t.Fatal(err)
	}
	js, err := DiagnosticsJSON(l.Files(), diags)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), string(js)} {
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\xff", "\r", `\u001b`, `\u0007`, `\u202e`} {
			if strings.Contains(out, bad) {
				t.Errorf("output holds %q:\n%s", bad, out)
			}
		}
	}
	if got := sanitizeSource([]byte("a\x1bb\u202ec\xffd\r\n")); string(got) != "a?b???c?d\r\n" {
		t.Errorf("sanitizeSource = %q", got)
	}
}

// TestLongLineSnippet: a diagnostic on a long line shows a window of it,
// at the right line and with the subject highlighted.
func TestLongLineSnippet(t *testing.T) {
	src := "\n\npolicy \"p\" { every = \"" + strings.Repeat("x", 50000) + "\" }\n"
	l := &Loader{LookupEnv: testEnv}
	_, diags := l.LoadSources(map[string][]byte{"long.hcl": []byte(src)})
	if !diags.HasErrors() {
		t.Fatal("loaded")
	}
	var text bytes.Buffer
	if err := WriteDiagnostics(&text, l.Files(), diags, false); err != nil {
		t.Fatal(err)
	}
	if text.Len() > 10000 || !strings.Contains(text.String(), "   3: policy \"p\" { every = \"xxx") {
		t.Errorf("%d bytes:\n%.3000s", text.Len(), text.String())
	}
	if !strings.Contains(text.String(), "long.hcl:3:") {
		t.Errorf("position lost:\n%.2000s", text.String())
	}
	for _, d := range diags {
		if d.Subject == nil {
			continue
		}
		files, shown := clipSnippet(l.Files(), d)
		f := files[d.Subject.Filename]
		if shown.Subject.End.Byte > len(f.Bytes) || shown.Subject.Start.Line != d.Subject.Start.Line {
			t.Errorf("clipped subject %+v outside %d bytes", shown.Subject, len(f.Bytes))
		}
	}
}
