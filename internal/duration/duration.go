// Package duration parses durations as rekey's configuration writes them:
// Go's syntax ("90s", "1h30m") plus days ("30d") and weeks ("2w"), which
// time.ParseDuration does not know.
package duration

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse parses s. A leading sign, fractions and mixed units are accepted
// ("1d12h", "1.5d"); "d" is 24 hours and "w" is 7 days.
func Parse(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New(`empty duration; write a number and a unit, such as "30s", "5m", "1h" or "30d"`)
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
		if s == "" {
			return 0, invalid(orig)
		}
	}
	if s == "0" {
		return 0, nil
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		if i == 0 {
			return 0, invalid(orig)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, invalid(orig)
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] == '.' || (s[j] >= '0' && s[j] <= '9')) {
			j++
		}
		unit, ok := units[s[:j]]
		if !ok {
			return 0, invalid(orig)
		}
		s = s[j:]
		total += n * float64(unit)
	}
	if total > float64(1<<63-1) {
		return 0, fmt.Errorf("duration %q is too long", orig)
	}
	d := time.Duration(total)
	if neg {
		d = -d
	}
	return d, nil
}

var units = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond,
	"µs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}

func invalid(s string) error {
	return fmt.Errorf(`invalid duration %q; write a number and a unit (ns, us, ms, s, m, h, d, w), such as "30s", "5m", "1h" or "30d"`, strings.TrimSpace(s))
}
