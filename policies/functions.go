package policies

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// maxFileSize bounds what file() reads: it is meant for tokens, ids and
// certificates, not for data.
const maxFileSize = 1 << 20

// evalContext returns the context attribute expressions of one file are
// evaluated in: the functions env, file, upper, lower and trimspace, and no
// variables (connection references such as vault.main are expressions that
// plugins resolve themselves through plugin.Env.Connection).
// Messages name files under shownDir, the directory as the operator wrote
// it, rather than the absolute baseDir.
func evalContext(baseDir, shownDir string, lookupEnv func(string) (string, bool)) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env":       envFunc(lookupEnv),
			"file":      fileFunc(baseDir, shownDir),
			"upper":     stdlib.UpperFunc,
			"lower":     stdlib.LowerFunc,
			"trimspace": stdlib.TrimSpaceFunc,
		},
	}
}

func envFunc(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable of the daemon.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if name == "" {
				return cty.NilVal, function.NewArgErrorf(0, "the variable name is empty")
			}
			v, ok := lookupEnv(name)
			if !ok {
				return cty.NilVal, function.NewArgErrorf(0, "environment variable %q is not set; set it in the daemon's environment (for systemd: Environment= or EnvironmentFile=)", name)
			}
			if !utf8.ValidString(v) {
				return cty.NilVal, function.NewArgErrorf(0, "environment variable %q is not valid UTF-8 text", name)
			}
			return cty.StringVal(v), nil
		},
	})
}

func fileFunc(baseDir, shownDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the content of a file, relative to the policy file's directory, without one trailing newline.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if p == "" {
				return cty.NilVal, function.NewArgErrorf(0, "the path is empty")
			}
			shown := p
			if !filepath.IsAbs(p) {
				p = filepath.Join(baseDir, p)
				shown = filepath.Join(shownDir, shown)
			}
			s, err := readSmallFile(p, shown)
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			s = strings.TrimSuffix(s, "\n")
			s = strings.TrimSuffix(s, "\r")
			return cty.StringVal(s), nil
		},
	})
}

// readSmallFile reads a regular file of at most maxFileSize bytes of UTF-8
// text. Its errors name the file as shown, never the content.
func readSmallFile(p, shown string) (string, error) {
	// Stat first: opening a FIFO for reading would block until a writer
	// comes.
	if st, err := os.Stat(p); err == nil && !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", shown)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("there is no file %s; create it or correct the path (a relative path is relative to the directory of the policy file)", shown)
		}
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("cannot read %s: permission denied; let the user rekey runs as read it", shown)
		}
		return "", fmt.Errorf("cannot read %s: %w", shown, cause(err))
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", shown, cause(err))
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", shown)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", shown, cause(err))
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes; file() is meant for tokens, ids and certificates", shown, maxFileSize)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s is not UTF-8 text", shown)
	}
	return string(b), nil
}

// cause strips the path an *fs.PathError repeats.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
