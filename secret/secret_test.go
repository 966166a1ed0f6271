package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const canary = "CANARY-s3cr3t-7731"

// TestNothingPrintsTheValue formats a Value and a Fields holding a canary
// through every path a secret could take into a log line or an error.
func TestNothingPrintsTheValue(t *testing.T) {
	v := New(canary)
	f := Fields{"secret_access_key": v, "access_key_id": New("AKIA" + canary)}
	type holder struct {
		Key    Value
		Fields Fields
		Ptr    *Value
	}
	h := holder{Key: v, Fields: f, Ptr: &v}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%-10v", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, v), fmt.Sprintf(verb, f), fmt.Sprintf(verb, h), fmt.Sprintf(verb, []Value{v}), fmt.Sprintf(verb, map[string]Value{"k": v}))
	}
	outs = append(outs, fmt.Sprint(v, f, h), fmt.Sprintln(v), v.String(), v.GoString(), f.String(), f.GoString())
	outs = append(outs, fmt.Errorf("writing %v: %w", v, errors.New("boom")).Error())
	for _, x := range []any{v, f, h, []Value{v}, map[string]Fields{"a": f}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	tb, _ := v.MarshalText()
	ftb, _ := f.MarshalText()
	outs = append(outs, string(tb), string(ftb))
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Interface("v", v).Interface("f", f).Interface("h", h).Stringer("s", v).Str("str", v.String()).Msgf("value %v fields %v", v, f)
	log.Info().Fields(map[string]any{"v": v, "f": f}).Msg("")
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, canary) || strings.Contains(o, "s3cr3t") {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(buf.String(), Redacted) {
		t.Fatal("the log does not show the redaction marker at all")
	}
	if v.Reveal() != canary || f["secret_access_key"].Reveal() != canary || f.Reveal()["access_key_id"] != "AKIA"+canary {
		t.Fatal("Reveal does not return the value")
	}
}

func TestValue(t *testing.T) {
	var zero Value
	if !zero.IsZero() || zero.Reveal() != "" || !New("").IsZero() || New("x").IsZero() {
		t.Fatal("IsZero")
	}
	if !New("a").Equal(New("a")) || New("a").Equal(New("b")) {
		t.Fatal("Equal")
	}
	a := Fields{"x": New("1"), "y": New("2")}
	b := Fields{"y": New("2"), "x": New("1")}
	c := Fields{"x": New("1"), "y": New("3")}
	d := Fields{"x1": New(""), "y": New("2")}
	if a.Digest() != b.Digest() || a.Digest() == c.Digest() || a.Digest() == d.Digest() {
		t.Fatal("Digest")
	}
	if got := strings.Join(a.Names(), ","); got != "x,y" {
		t.Fatalf("Names = %s", got)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"abc":                  "***",
		"abcd":                 "****",
		"AKIAIOSFODNN7EXAMPLE": "************MPLE",
		"key-12345":            "*****2345",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
	if Fingerprint("a") == Fingerprint("b") || len(Fingerprint("a")) != 12 {
		t.Fatal("Fingerprint")
	}
}
