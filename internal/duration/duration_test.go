package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"0":      0,
		"30s":    30 * time.Second,
		"1m":     time.Minute,
		"1h30m":  90 * time.Minute,
		"30d":    30 * 24 * time.Hour,
		"2w":     14 * 24 * time.Hour,
		"1.5d":   36 * time.Hour,
		"-5m":    -5 * time.Minute,
		"250ms":  250 * time.Millisecond,
		"1d12h":  36 * time.Hour,
		"+10s":   10 * time.Second,
		"100us":  100 * time.Microsecond,
		"1w1d1h": 8*24*time.Hour + time.Hour,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "m", "5x", "1..5s", "1d 2h", "-", "s5"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", in)
		}
	}
}
