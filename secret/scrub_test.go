package secret

import (
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	key := Fields{"id": New("AKIAEXAMPLE"), "secret": New("CANARY/s3cr3t+value"), "short": New("ab")}
	for _, tc := range []struct{ in, want string }{
		{"delete failed: server said CANARY/s3cr3t+value is invalid", "delete failed: server said [REDACTED] is invalid"},
		{"twice CANARY/s3cr3t+value and AKIAEXAMPLE", "twice [REDACTED] and [REDACTED]"},
		{"a short value ab stays", "a short value ab stays"},
		{"line one\nline two\x1b[31m red", "line one line two [31m red"},
		{"bad \xff byte", "bad \uFFFD byte"},
	} {
		if got := Scrub(tc.in, key); got != tc.want {
			t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := Scrub(strings.Repeat("é", MaxText), key)
	if len(long) > MaxText+3 || !strings.HasSuffix(long, "...") || !strings.HasPrefix(long, "é") {
		t.Errorf("long text not cut on a rune boundary: %d bytes, ends %q", len(long), long[len(long)-8:])
	}
	if got := Scrub("nothing known"); got != "nothing known" {
		t.Errorf("Scrub without values = %q", got)
	}
}
