package policies

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const messy = `policy "p" {
every = "30d"
    window="Mon 09:00-10:00"
  provider "test" {
  name = "p"
  }
}
`

const tidy = `policy "p" {
  every  = "30d"
  window = "Mon 09:00-10:00"
  provider "test" {
    name = "p"
  }
}
`

func TestFormat(t *testing.T) {
	t.Parallel()
	got, diags := Format([]byte(messy), "m.hcl")
	if diags.HasErrors() || string(got) != tidy {
		t.Fatalf("Format = %q, %v; want %q", got, diags, tidy)
	}
	again, _ := Format(got, "m.hcl")
	if !bytes.Equal(again, got) {
		t.Error("Format is not idempotent")
	}
	if out, diags := Format([]byte("policy \"p\" {\n  every = \n"), "bad.hcl"); !diags.HasErrors() || out != nil {
		t.Errorf("a syntax error was formatted: %q", out)
	}
}

func TestFormatPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.hcl", messy)
	b := write("b.hcl", tidy)
	c := write("c.hcl", "policy {\n")
	write("notes.txt", messy)

	var out bytes.Buffer
	res, err := FormatPath(dir, true, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Changed, ",") != a || out.String() != a+"\n" {
		t.Errorf("check: changed %v, printed %q", res.Changed, out.String())
	}
	if !res.Diagnostics.HasErrors() || res.Diagnostics[0].Subject.Filename != c || res.Files[c] == nil {
		t.Errorf("check: diagnostics %v", res.Diagnostics)
	}
	if src, _ := os.ReadFile(a); string(src) != messy {
		t.Error("check wrote a file")
	}

	out.Reset()
	if _, err := FormatPath(b, false, false, &out); err != nil || out.String() != tidy {
		t.Errorf("print: %q, %v", out.String(), err)
	}

	out.Reset()
	res, err = FormatPath(dir, false, true, &out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Changed, ",") != a || out.String() != a+"\n" {
		t.Errorf("write: changed %v, printed %q", res.Changed, out.String())
	}
	if src, _ := os.ReadFile(a); string(src) != tidy {
		t.Errorf("write left %q", src)
	}
	if st, _ := os.Stat(a); st.Mode().Perm() != 0o640 {
		t.Errorf("write changed the mode to %v", st.Mode())
	}
	if src, _ := os.ReadFile(c); string(src) != "policy {\n" {
		t.Error("write touched a file with a syntax error")
	}
	if src, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(src) != messy {
		t.Error("write touched a file that is not *.hcl")
	}

	res, err = FormatPath(dir, true, false, &bytes.Buffer{})
	if err != nil || len(res.Changed) != 0 {
		t.Errorf("second check: %v, %v", res.Changed, err)
	}

	d := write("d.hcl", "x = {\n  password = \"canary-fmt-secret\" oops\n}\n")
	res, err = FormatPath(d, true, false, &out)
	if err != nil || !res.Diagnostics.HasErrors() {
		t.Fatalf("syntax error not reported: %v %v", res.Diagnostics, err)
	}
	var shown bytes.Buffer
	if err := WriteDiagnostics(&shown, res.Files, res.Diagnostics, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown.String(), "canary-fmt-secret") || !strings.Contains(shown.String(), "password") {
		t.Errorf("fmt diagnostics show the secret or no snippet:\n%s", shown.String())
	}

	if _, err := FormatPath(filepath.Join(dir, "missing"), true, false, &out); err == nil {
		t.Error("a missing path is no error")
	}
}

// TestFixturesAreFormatted keeps the valid examples in canonical layout.
func TestFixturesAreFormatted(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"testdata/good", "testdata/warn"} {
		res, err := FormatPath(dir, true, false, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changed) != 0 || res.Diagnostics.HasErrors() {
			t.Errorf("not formatted: %v %v", res.Changed, res.Diagnostics)
		}
	}
}
