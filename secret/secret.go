// Package secret holds the one type that carries secret material through
// rekey. A Value redacts itself wherever it could be printed, logged,
// marshalled or formatted; the only way to read it is the explicit Reveal
// method, called by the plugins that must send the value out.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Redacted is what a Value prints in place of its content.
const Redacted = "[REDACTED]"

// Value is a secret string. Its zero value is empty.
type Value struct {
	s *string
}

// New wraps s as a secret Value.
func New(s string) Value { return Value{s: &s} }

// Reveal returns the secret content. Call it only at the point where the
// value leaves the process for its intended destination.
func (v Value) Reveal() string {
	if v.s == nil {
		return ""
	}
	return *v.s
}

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return v.s == nil || *v.s == "" }

// Equal compares two values in constant time.
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(v.Reveal()), []byte(o.Reveal())) == 1
}

// String implements fmt.Stringer with a redaction marker.
func (v Value) String() string { return Redacted }

// GoString implements fmt.GoStringer with a redaction marker.
func (v Value) GoString() string { return `secret.Value("` + Redacted + `")` }

// Format implements fmt.Formatter so that every verb prints the marker.
func (v Value) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON implements json.Marshaler with the redaction marker.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with the redaction marker.
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Fields is a secret value made of named parts, such as access_key_id and
// secret_access_key. It prints only its field names.
type Fields map[string]Value

// Names returns the field names in sorted order.
func (f Fields) Names() []string {
	names := make([]string, 0, len(f))
	for k := range f {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Reveal returns the plain map of field values, for a sink that must write
// them out.
func (f Fields) Reveal() map[string]string {
	m := make(map[string]string, len(f))
	for k, v := range f {
		m[k] = v.Reveal()
	}
	return m
}

// Digest is a SHA-256 over the sorted fields, for read-back comparison
// inside the process. It is not a safe public identifier of a low-entropy
// value: never log or store it.
func (f Fields) Digest() [32]byte {
	h := sha256.New()
	for _, k := range f.Names() {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(f[k].Reveal()))
		h.Write([]byte(f[k].Reveal()))
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// String prints the field names with redacted values.
func (f Fields) String() string {
	parts := make([]string, 0, len(f))
	for _, k := range f.Names() {
		parts = append(parts, k+":"+Redacted)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// GoString implements fmt.GoStringer.
func (f Fields) GoString() string { return "secret.Fields" + f.String() }

// Format implements fmt.Formatter so that every verb redacts the values.
func (f Fields) Format(s fmt.State, verb rune) { _, _ = s.Write([]byte(f.String())) }

// MarshalJSON implements json.Marshaler with redacted values.
func (f Fields) MarshalJSON() ([]byte, error) {
	parts := make([]string, 0, len(f))
	for _, k := range f.Names() {
		parts = append(parts, fmt.Sprintf("%q:%q", k, Redacted))
	}
	return []byte("{" + strings.Join(parts, ",") + "}"), nil
}

// MarshalText implements encoding.TextMarshaler with redacted values.
func (f Fields) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Mask hides all but the last four characters of a key id that is
// sensitive enough not to be logged whole.
func Mask(id string) string {
	if len(id) <= 4 {
		return strings.Repeat("*", len(id))
	}
	return strings.Repeat("*", min(len(id)-4, 12)) + id[len(id)-4:]
}

// Fingerprint returns a short, non-reversible label for a key id (not for
// a secret value): the first 12 hex digits of its SHA-256.
func Fingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}
