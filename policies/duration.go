package policies

import (
	"time"

	"github.com/rekeyhq/rekey/internal/duration"
)

// Day and Week are the duration units d and w of policy files.
const (
	Day  = duration.Day
	Week = duration.Week
)

// ParseDuration parses a policy duration: a possibly signed sequence of
// decimal numbers, each followed by a unit, such as "90d", "1h30m", "2w" or
// "1.5h". The units are those of time.ParseDuration plus d (24h) and w (7d).
// A bare "0" is zero.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// FormatDuration renders d with the largest units that divide it exactly:
// 720h is "30d", 336h is "2w", 90m is "1h30m".
func FormatDuration(d time.Duration) string { return duration.Format(d) }
