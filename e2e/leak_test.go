package e2e

import (
	"reflect"
	"testing"

	"github.com/rekeyhq/rekey/secret"
)

// TestFindLeaks shows that the leak check every test runs at its end can
// fail: a planted canary is reported with where it was found, and a key id
// passes only masked.
func TestFindLeaks(t *testing.T) {
	t.Parallel()
	const canary = "e2e-canary-7f3c9a1b2d4e6f80-secret"
	const id = "AKIAZZE2ETESTKEY0001"
	texts := map[string]string{
		"log output": `{"level":"warn","error":"sts: signing with ` + canary + ` failed"}`,
		"event 3":    `{"step":"create","new_key_id":"` + secret.Mask(id) + `"}`,
		"error 0":    "deleting access key " + id + ": NoSuchEntity",
	}
	got := findLeaks(texts, map[string]string{canary: "the canary", "short": "a short value"})
	if want := []string{"the canary found in log output"}; !reflect.DeepEqual(got, want) {
		t.Errorf("findLeaks(secrets) = %q, want %q", got, want)
	}
	got = findLeaks(texts, map[string]string{id: "the key id"})
	if want := []string{"the key id found in error 0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("findLeaks(key ids) = %q, want %q", got, want)
	}
}
