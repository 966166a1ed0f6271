package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rekeyhq/rekey/plugin"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// render returns the file content for key. Its errors name fields, never
// values, and are permanent: a retry renders the same.
func (s *Sink) render(key plugin.Key) ([]byte, error) {
	fields := key.Value.Reveal()
	if len(fields) == 0 {
		return nil, plugin.Permanent(errors.New("the key has no value to write (was rekey restarted in the middle of the rotation?)"))
	}
	names := key.Value.Names()
	var buf bytes.Buffer
	switch s.format {
	case "raw":
		if len(names) != 1 {
			return nil, plugin.Permanent(fmt.Errorf("format \"raw\" writes exactly one field, but the key has %d (%s); choose one with fields = { name = \"field\" }, or use the json, env or template format", len(names), strings.Join(names, ", ")))
		}
		buf.WriteString(fields[names[0]])
		if s.newline {
			buf.WriteByte('\n')
		}
	case "json":
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(fields); err != nil {
			return nil, plugin.Permanent(errors.New("encoding the fields as JSON failed"))
		}
	case "env":
		for _, name := range names {
			if !envName.MatchString(name) {
				return nil, plugin.Permanent(fmt.Errorf("field %q is not a valid variable name for the env format; rename it with the sink's fields option, such as fields = { API_TOKEN = %q }", name, name))
			}
			v := fields[name]
			if strings.ContainsAny(v, "\x00\n\r") {
				return nil, plugin.Permanent(fmt.Errorf("the value of field %q contains a line break or NUL, which the env format cannot hold; use the json or template format", name))
			}
			buf.WriteString(name)
			buf.WriteByte('=')
			buf.WriteString(quoteEnv(v))
			buf.WriteByte('\n')
		}
	case "template":
		data := struct {
			Fields map[string]string
			KeyID  string
		}{fields, key.ID}
		if err := s.tmpl.Execute(&buf, data); err != nil {
			clear(buf.Bytes())
			return nil, plugin.Permanent(fmt.Errorf("rendering the template: %w", scrub(err, fields)))
		}
	default:
		return nil, plugin.Permanent(fmt.Errorf("unknown format %q", s.format))
	}
	return buf.Bytes(), nil
}

// quoteEnv quotes v for a NAME=value line that POSIX shells (". file")
// and systemd's EnvironmentFile= both read back as v: in double quotes,
// with a backslash before each of the four characters special there
// (backslash, double quote, dollar and backquote). Line breaks and NUL are
// refused before.
func quoteEnv(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for _, r := range v {
		switch r {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// scrub returns err unless its text contains one of the secret values, in
// which case a generic error replaces it.
func scrub(err error, fields map[string]string) error {
	msg := err.Error()
	for _, v := range fields {
		if v != "" && strings.Contains(msg, v) {
			return errors.New("the error message contained a secret value and was withheld")
		}
	}
	return err
}
