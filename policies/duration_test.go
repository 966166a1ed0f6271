package policies

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"90d":    90 * Day,
		"2w":     2 * Week,
		"1h30m":  90 * time.Minute,
		"1w2d3h": Week + 2*Day + 3*time.Hour,
		"1.5d":   36 * time.Hour,
		"500ms":  500 * time.Millisecond,
		"30s":    30 * time.Second,
		"0":      0,
		"0s":     0,
		"-1h":    -time.Hour,
		"+2m":    2 * time.Minute,
		"1d12h":  36 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":           "empty",
		"30":         "missing unit",
		"30days":     `unknown unit "days"`,
		"1y":         `unknown unit "y"`,
		"d":          "invalid",
		"-":          "invalid",
		"1h-30m":     "invalid",
		"1 d":        "unknown unit",
		"..d":        "invalid",
		"999999999w": "too large",
		"2562047h1w": "too large",
	}
	for in, want := range bad {
		_, err := ParseDuration(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		30 * Day:                "30d",
		2 * Week:                "2w",
		36 * time.Hour:          "1d12h",
		90 * time.Minute:        "1h30m",
		-time.Hour:              "-1h",
		1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
