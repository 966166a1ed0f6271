//go:build unix

package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFileFunction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"crlf.txt":  "value\r\n",
		"two.txt":   "value\n\n",
		"plain.txt": "value",
		"big.txt":   strings.Repeat("x", maxFileSize+1),
		"bin.txt":   "\xff\xfe",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg, want, err string
	}{
		{"crlf.txt", "value", ""},
		{"two.txt", "value\n", ""},
		{"plain.txt", "value", ""},
		{filepath.Join(dir, "plain.txt"), "value", ""},
		{"big.txt", "", "larger than"},
		{"bin.txt", "", "not UTF-8"},
		{"fifo", "", "not a regular file"},
		{".", "", "not a regular file"},
		{"nope.txt", "", "there is no file"},
	}
	for _, tt := range tests {
		src := fmt.Sprintf("policy \"p\" {\n  every = \"1d\"\n  provider \"test\" { name = file(%q) }\n  sink \"test\" { path = \"/p\" }\n  probe \"test\" {}\n}\n", tt.arg)
		l := NewLoader()
		cfg, diags := l.LoadSources(map[string][]byte{filepath.Join(dir, "p.hcl"): []byte(src)})
		if tt.err != "" {
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.err) {
				t.Errorf("file(%q): diagnostics %v, want %q", tt.arg, diags, tt.err)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("file(%q): %v", tt.arg, diags)
			continue
		}
		if got := cfg.Policies[0].Provider.Provider.(*testProvider).name; got != tt.want {
			t.Errorf("file(%q) = %q, want %q", tt.arg, got, tt.want)
		}
	}
}
