package policies

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical HCL layout (hclwrite.Format: aligned
// equals signs, two-space indentation). A source that does not parse is
// returned as diagnostics instead, so that formatting never rewrites a file
// it does not understand.
func Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if diags := scanBounds(filename, src); diags.HasErrors() {
		return nil, diags
	}
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// FormatResult is the outcome of FormatPath.
type FormatResult struct {
	// Changed lists the files whose layout differs from the canonical one
	// (rewritten when writing), in the order read.
	Changed []string
	// Files are the sources read, for rendering Diagnostics with
	// WriteDiagnostics or DiagnosticsJSON; literal secrets are masked.
	Files map[string]*hcl.File
	// Diagnostics are syntax errors; a file with errors is left alone.
	Diagnostics hcl.Diagnostics
}

// FormatPath formats a policy file, or every *.hcl file directly inside a
// directory (as Load reads them), for `rekey fmt [-check] [-write] PATH`:
//
//   - write: files whose layout differs are rewritten in place and their
//     names printed to out, one a line;
//   - check (without write): the names of those files are printed and
//     nothing is written;
//   - neither: the formatted content of every file is printed to out.
//
// The command fails when Diagnostics has errors, or when check is set and
// Changed is not empty. The error reports files that could not be read or
// written.
func FormatPath(path string, check, write bool, out io.Writer) (*FormatResult, error) {
	res := &FormatResult{Files: map[string]*hcl.File{}}
	names, diags := (&Loader{skipHostChecks: true}).listFiles([]string{path})
	if diags.HasErrors() {
		return res, fmt.Errorf("listing policy files: %s", diags.Error())
	}
	for _, name := range names {
		src, err := readPolicyFile(name)
		if err != nil {
			return res, fmt.Errorf("reading %s: %w", name, cause(err))
		}
		if bd := scanBounds(name, src); bd.HasErrors() {
			if len(src) > MaxFileSize {
				src = src[:4096]
			}
			res.Files[name] = &hcl.File{Body: &hclsyntax.Body{}, Bytes: sanitizeSource(src)}
			res.Diagnostics = append(res.Diagnostics, bd...)
			continue
		}
		f, pd := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		shown := f
		if body, ok := f.Body.(*hclsyntax.Body); ok {
			_, mask := scanSecrets(body)
			shown = &hcl.File{Body: f.Body, Bytes: sanitizeSource(maskSource(f.Bytes, mask)), Nav: f.Nav}
		}
		res.Files[name] = shown
		if pd.HasErrors() {
			res.Diagnostics = append(res.Diagnostics, pd...)
			continue
		}
		formatted := hclwrite.Format(src)
		changed := !bytes.Equal(src, formatted)
		if changed {
			res.Changed = append(res.Changed, name)
		}
		switch {
		case write:
			if changed {
				if err := rewrite(name, formatted); err != nil {
					return res, err
				}
				if _, err := fmt.Fprintln(out, name); err != nil {
					return res, err
				}
			}
		case check:
			if changed {
				if _, err := fmt.Fprintln(out, name); err != nil {
					return res, err
				}
			}
		default:
			if _, err := out.Write(formatted); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// rewrite replaces the content of name, keeping its mode, owner and any
// symbolic link that leads to it.
func rewrite(name string, data []byte) error {
	st, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, cause(err))
	}
	if err := os.WriteFile(name, data, st.Mode().Perm()); err != nil {
		return fmt.Errorf("writing %s: %w", name, cause(err))
	}
	return nil
}
