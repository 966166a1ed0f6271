// Package random implements the random provider: a shared secret generated
// by rekey itself (a webhook signing secret, an internal API token, a
// password that two services agree on through their sinks). Nothing exists
// outside rekey, so there is nothing to create or delete at a provider:
// the sinks are where the secret lives.
package random

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

func init() { providers.Register("random", New) }

// Limits on the generated secret.
const (
	DefaultLength = 32
	MaxLength     = 4096
	// minBits is the least entropy accepted; below recommendedBits a
	// warning is given.
	minBits         = 64
	recommendedBits = 128
	minCustomChars  = 16
)

// Charsets are the named character sets.
var Charsets = map[string]string{
	"alnum":     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"alpha":     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	"hex":       "0123456789abcdef",
	"base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	"printable": "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
}

type config struct {
	Length        *int      `hcl:"length,optional"`
	Charset       *string   `hcl:"charset,optional"`
	Bytes         *int      `hcl:"bytes,optional"`
	Encoding      *string   `hcl:"encoding,optional"`
	Field         *string   `hcl:"field,optional"`
	LengthRange   hcl.Range `hcl:"length,attr_range"`
	CharsetRange  hcl.Range `hcl:"charset,attr_range"`
	BytesRange    hcl.Range `hcl:"bytes,attr_range"`
	EncodingRange hcl.Range `hcl:"encoding,attr_range"`
	FieldRange    hcl.Range `hcl:"field,attr_range"`
}

// Provider generates random secrets.
type Provider struct {
	target string
	field  string
	// Either charset and length, or bytes and encode.
	charset []rune
	length  int
	bytes   int
	encode  func([]byte) string
	rand    io.Reader
}

var _ providers.Provider = (*Provider)(nil)

// New decodes a random provider block.
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at(r)})
	}
	p := &Provider{target: "random:" + env.Policy, field: "value", rand: rand.Reader}

	if cfg.Field != nil {
		p.field = *cfg.Field
		if p.field == "" || strings.IndexFunc(p.field, unicode.IsControl) >= 0 || strings.ContainsAny(p.field, " \t") {
			errAt(cfg.FieldRange, "Invalid field", "field names the secret's one field, such as \"token\"; it must be non-empty, without spaces or control characters.")
		}
	}

	var bits float64
	if cfg.Bytes != nil {
		if cfg.Length != nil {
			errAt(cfg.LengthRange, "Conflicting options", "length and charset generate characters; bytes and encoding generate raw bytes and encode them. Use one pair, not both.")
		}
		if cfg.Charset != nil {
			errAt(cfg.CharsetRange, "Conflicting options", "length and charset generate characters; bytes and encoding generate raw bytes and encode them. Use one pair, not both.")
		}
		p.bytes = *cfg.Bytes
		bits = float64(p.bytes) * 8
		if p.bytes < 1 || p.bytes > MaxLength {
			errAt(cfg.BytesRange, "Invalid bytes", fmt.Sprintf("bytes must be between %d and %d.", minBits/8, MaxLength))
		}
		enc := "hex"
		if cfg.Encoding != nil {
			enc = *cfg.Encoding
		}
		switch enc {
		case "hex":
			p.encode = hex.EncodeToString
		case "base64":
			p.encode = base64.StdEncoding.EncodeToString
		case "base64url":
			p.encode = base64.RawURLEncoding.EncodeToString
		default:
			errAt(cfg.EncodingRange, "Invalid encoding", fmt.Sprintf("Unknown encoding %q: use \"hex\", \"base64\" (standard, padded) or \"base64url\" (URL-safe, unpadded).", enc))
		}
	} else {
		if cfg.Encoding != nil {
			errAt(cfg.EncodingRange, "Encoding needs bytes", "encoding applies to raw bytes: set bytes (how many random bytes to encode), or remove encoding and use length and charset.")
		}
		p.length = DefaultLength
		if cfg.Length != nil {
			p.length = *cfg.Length
			if p.length < 1 || p.length > MaxLength {
				errAt(cfg.LengthRange, "Invalid length", fmt.Sprintf("length must be between 1 and %d characters.", MaxLength))
			}
		}
		name := "alnum"
		if cfg.Charset != nil {
			name = *cfg.Charset
		}
		set, detail := charset(name)
		if detail != "" {
			errAt(cfg.CharsetRange, "Invalid charset", detail)
		}
		p.charset = set
		if len(set) > 0 {
			bits = float64(p.length) * math.Log2(float64(len(set)))
		}
	}

	if !diags.HasErrors() {
		r := cfg.LengthRange
		if cfg.Bytes != nil {
			r = cfg.BytesRange
		}
		switch {
		case bits < minBits:
			errAt(r, "Secret too weak", fmt.Sprintf("These options give a secret of about %.0f bits of entropy; rekey requires at least %d (128 recommended). Raise length or bytes.", bits, minBits))
		case bits < recommendedBits:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Weak secret", Detail: fmt.Sprintf("These options give a secret of about %.0f bits of entropy; at least 128 is recommended.", bits), Subject: at(r)})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// charset returns the named or custom character set, or a diagnostic
// detail when it is unusable.
func charset(name string) ([]rune, string) {
	if s, ok := Charsets[name]; ok {
		return []rune(s), ""
	}
	if !utf8.ValidString(name) {
		return nil, "The charset is not valid UTF-8."
	}
	set := []rune(name)
	if len(set) < minCustomChars {
		return nil, fmt.Sprintf("Unknown charset %q: use \"alnum\", \"alpha\", \"hex\", \"base64url\", \"printable\", or a custom string of at least %d distinct characters.", name, minCustomChars)
	}
	seen := map[rune]bool{}
	for _, r := range set {
		if seen[r] {
			return nil, fmt.Sprintf("The custom charset lists %q twice; a repeated character would be drawn more often than the others. List each character once.", r)
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return nil, "The custom charset contains a space or control character; list printable characters only."
		}
		seen[r] = true
	}
	return set, ""
}

// Target implements providers.Provider: "random:" and the policy name.
func (p *Provider) Target() string { return p.target }

// Create generates a fresh secret. Its key id is derived from the rotation
// id, so it is the same each time Create runs for one rotation, but the
// value is not: rekey never stores values, so after a crash before commit
// the rotation is rolled back (the sinks restored to their previous
// versions) and a new rotation starts; a value generated before the crash
// is never served. Running Create twice in one live rotation only happens
// before any sink was written with the first value.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	var v string
	var err error
	if p.bytes > 0 {
		b := make([]byte, p.bytes)
		if _, err = io.ReadFull(p.rand, b); err == nil {
			v = p.encode(b)
		}
	} else {
		v, err = generate(p.rand, p.charset, p.length)
	}
	if err != nil {
		return plugin.Key{}, fmt.Errorf("reading the system's random generator: %w", err)
	}
	return plugin.Key{
		ID:        KeyID(rot.ID),
		Value:     secret.Fields{p.field: secret.New(v)},
		CreatedAt: time.Now().UTC(),
	}, nil
}

// Delete does nothing: a random secret exists only in the sinks.
func (p *Provider) Delete(ctx context.Context, keyID string) error { return nil }

// KeyID is the non-secret id of the key created by a rotation: "rnd-" and
// the first 12 hex digits of the SHA-256 of the rotation id.
func KeyID(rotationID string) string {
	sum := sha256.Sum256([]byte(rotationID))
	return "rnd-" + hex.EncodeToString(sum[:6])
}

// generate draws n characters from set uniformly: each draw takes 32
// random bits and rejects values at or above the largest multiple of
// len(set), so that the modulo has no bias.
func generate(r io.Reader, set []rune, n int) (string, error) {
	size := uint64(len(set))
	limit := (1 << 32) / size * size
	var b strings.Builder
	buf := make([]byte, 4*n+16)
	for count := 0; count < n; {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		for i := 0; i+4 <= len(buf) && count < n; i += 4 {
			v := uint64(binary.BigEndian.Uint32(buf[i:]))
			if v >= limit {
				continue
			}
			b.WriteRune(set[v%size])
			count++
		}
	}
	clear(buf)
	return b.String(), nil
}
