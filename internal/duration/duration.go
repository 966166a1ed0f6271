// Package duration parses durations as rekey's configuration writes them:
// Go's syntax ("90s", "1h30m") plus days ("30d") and weeks ("2w"), which
// time.ParseDuration does not know. The policy loader and every plugin
// parse durations with it.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Day and Week are the duration units d and w of policy files.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// Parse parses a policy duration: a possibly signed sequence of
// decimal numbers, each followed by a unit, such as "90d", "1h30m", "2w" or
// "1.5h". The units are those of time.ParseDuration (ns, us, µs, ms, s, m,
// h) plus d (24h) and w (7d). A bare "0" is zero.
func Parse(s string) (time.Duration, error) {
	if s == "0" || s == "-0" || s == "+0" {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New("empty duration")
	}
	rest := s
	neg := false
	if rest[0] == '-' || rest[0] == '+' {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	if rest == "" {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	var total int64
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] == '.' || rest[i] >= '0' && rest[i] <= '9') {
			i++
		}
		num := rest[:i]
		if num == "" || num == "." {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && rest[j] != '.' && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit := rest[:j]
		rest = rest[j:]
		var part int64
		switch unit {
		case "":
			return 0, fmt.Errorf("missing unit in duration %q", s)
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			u := float64(Day)
			if unit == "w" {
				u = float64(Week)
			}
			v := f * u
			if v >= math.MaxInt64 {
				return 0, fmt.Errorf("duration %q is too large", s)
			}
			part = int64(v)
		default:
			if strings.ContainsAny(unit, "+-") {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				if strings.Contains(err.Error(), "unknown unit") {
					return 0, fmt.Errorf("unknown unit %q in duration %q", unit, s)
				}
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			part = int64(d)
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		total += part
	}
	if neg {
		total = -total
	}
	return time.Duration(total), nil
}

// Format renders d with the largest units that divide it exactly,
// for messages and documentation: 720h is "30d", 336h is "2w", 90m is
// "1h30m".
func Format(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		if d == math.MinInt64 {
			return d.String()
		}
		d = -d
	}
	if d%time.Second != 0 {
		b.WriteString(d.String())
		return b.String()
	}
	if d%Week == 0 {
		fmt.Fprintf(&b, "%dw", d/Week)
		return b.String()
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{Day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String()
}
