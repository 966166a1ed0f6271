package random

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

func decode(t *testing.T, src string) (providers.Provider, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "webhook-secret", Kind: "random", DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	return New(env, f.Body)
}

func create(t *testing.T, src string, rotID string) plugin.Key {
	t.Helper()
	p, diags := decode(t, src)
	if diags.HasErrors() {
		t.Fatalf("decoding %q: %s", src, diags)
	}
	k, err := p.Create(context.Background(), plugin.Rotation{ID: rotID, Policy: "webhook-secret"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	p, diags := decode(t, "")
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	if p.Target() != "random:webhook-secret" {
		t.Fatalf("target = %q", p.Target())
	}
	rot := plugin.Rotation{ID: "01JJ0ROTATION", Policy: "webhook-secret"}
	k1, err := p.Create(context.Background(), rot)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := p.Create(context.Background(), rot)
	if err != nil {
		t.Fatal(err)
	}
	v := k1.Value["value"].Reveal()
	if len(k1.Value) != 1 || len(v) != 32 || strings.Trim(v, Charsets["alnum"]) != "" {
		t.Fatalf("value %d chars %q", len(v), k1.Value.Names())
	}
	if k1.ID != k2.ID || !strings.HasPrefix(k1.ID, "rnd-") || len(k1.ID) != 16 || k1.ID != KeyID(rot.ID) {
		t.Fatalf("key ids %q %q, want one stable id per rotation", k1.ID, k2.ID)
	}
	if KeyID("other") == k1.ID {
		t.Fatal("two rotations share a key id")
	}
	if k1.Value["value"].Equal(k2.Value["value"]) {
		t.Fatal("two creates gave the same value")
	}
	if strings.Contains(k1.ID, v) || strings.Contains(v, k1.ID[4:]) {
		t.Fatal("the key id is derived from the value")
	}
	if err := p.Delete(context.Background(), k1.ID); err != nil {
		t.Fatal(err)
	}
}

func TestCharsets(t *testing.T) {
	t.Parallel()
	custom := "ÄÖÜäöüß0123456789"
	cases := map[string]string{
		`charset = "alnum"`:                            Charsets["alnum"],
		`charset = "alpha"`:                            Charsets["alpha"],
		`charset = "hex"`:                              Charsets["hex"],
		`charset = "base64url"`:                        Charsets["base64url"],
		`charset = "printable"`:                        Charsets["printable"],
		`charset = "` + custom + `"`:                   custom,
		`charset = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"`: "ABCDEFGHJKLMNPQRSTUVWXYZ23456789",
	}
	for src, set := range cases {
		k := create(t, src+"\nlength = 200\nfield = \"token\"", "r")
		v := []rune(k.Value["token"].Reveal())
		if len(v) != 200 {
			t.Errorf("%s: %d characters", src, len(v))
		}
		for _, r := range v {
			if !strings.ContainsRune(set, r) {
				t.Errorf("%s: character %q is not in the charset", src, r)
			}
		}
	}
}

func TestBytesAndEncodings(t *testing.T) {
	t.Parallel()
	v := create(t, "bytes = 32", "r").Value["value"].Reveal()
	if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
		t.Fatalf("hex: %d chars, %v", len(v), err)
	}
	v = create(t, "bytes = 32\nencoding = \"base64\"", "r").Value["value"].Reveal()
	if b, err := base64.StdEncoding.DecodeString(v); err != nil || len(b) != 32 || !strings.HasSuffix(v, "=") {
		t.Fatalf("base64: %v", err)
	}
	v = create(t, "bytes = 33\nencoding = \"base64url\"", "r").Value["value"].Reveal()
	if b, err := base64.RawURLEncoding.DecodeString(v); err != nil || len(b) != 33 || strings.ContainsAny(v, "+/=") {
		t.Fatalf("base64url: %v", err)
	}
}

func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, summary string
		line         int
	}{
		{"bytes = 32\nlength = 40", "Conflicting options", 2},
		{"charset = \"hex\"\nbytes = 32", "Conflicting options", 1},
		{"length = 32\n\nencoding = \"hex\"", "Encoding needs bytes", 3},
		{"bytes = 32\nencoding = \"base32\"", "Invalid encoding", 2},
		{"charset = \"alphanumeric\"", "Invalid charset", 1},
		{"charset = \"aabcdefghijklmnop\"", "Invalid charset", 1},
		{"charset = \"abc defghijklmnopq\"", "Invalid charset", 1},
		{"length = 0", "Invalid length", 1},
		{"length = 5000", "Invalid length", 1},
		{"\nlength = 10", "Secret too weak", 2},
		{"bytes = 7", "Secret too weak", 1},
		{"field = \"\"", "Invalid field", 1},
		{"lenght = 40", "Unsupported argument", 1},
	}
	for _, c := range cases {
		p, diags := decode(t, c.src)
		if !diags.HasErrors() || p != nil {
			t.Errorf("%q: want an error, got %v", c.src, diags)
			continue
		}
		d := diags[0]
		if d.Summary != c.summary || d.Subject == nil || d.Subject.Start.Line != c.line {
			t.Errorf("%q: diagnostic %q at %v, want %q at line %d", c.src, d.Summary, d.Subject, c.summary, c.line)
		}
	}
	_, diags := decode(t, "length = 14")
	if diags.HasErrors() || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("83 bits: want one warning, got %v", diags)
	}
}

func TestGenerateRejectsBiasedDraws(t *testing.T) {
	t.Parallel()
	set := []rune(Charsets["alnum"])
	// 0xFFFFFFFF lies above the largest multiple of 62 below 2^32 and
	// must be skipped; taken modulo 62 it would give set[3].
	in := append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 63}, make([]byte, 12)...)
	got, err := generate(bytes.NewReader(in), set, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != "B" {
		t.Fatalf("generate = %q, want %q (the draw at the limit rejected)", got, "B")
	}
}

func TestGenerateIsRoughlyUniform(t *testing.T) {
	t.Parallel()
	for _, set := range []string{Charsets["alnum"], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcd0123456789"} {
		runes := []rune(set)
		const perChar = 2000
		n := len(runes) * perChar
		var all strings.Builder
		for all.Len() < n {
			all.WriteString(create(t, "charset = \""+set+"\"\nlength = 4096", "r").Value["value"].Reveal())
		}
		counts := map[rune]int{}
		for _, r := range all.String()[:n] {
			counts[r]++
		}
		if len(counts) != len(runes) {
			t.Fatalf("only %d of %d characters drawn", len(counts), len(runes))
		}
		chi := 0.0
		for _, c := range counts {
			d := float64(c - perChar)
			chi += d * d / perChar
		}
		// With len(runes)-1 degrees of freedom (39 or 61) the statistic
		// exceeds 3 times that only with negligible probability.
		if chi > 3*float64(len(runes)-1) {
			t.Fatalf("charset of %d: chi-square %.1f, the draws look biased", len(runes), chi)
		}
	}
}
