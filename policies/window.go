package policies

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	// Policies name IANA time zones; embed the database so that a minimal
	// host without /usr/share/zoneinfo still resolves them.
	_ "time/tzdata"
)

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

const dayHelp = "use Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range such as Mon-Fri, a list such as Mon,Wed,Fri, or daily"

// ParseWindow parses a weekly window such as "Mon-Thu 09:00-16:00
// Europe/Berlin": days, a time range and an optional IANA time zone
// (default UTC). Days are a day (Mon), a range (Mon-Fri, Fri-Mon wraps), a
// comma-separated list of days and ranges, or "daily" / "*"; the days may
// be left out for a daily window. Times are HH:MM; the end may be 24:00, and
// an end before the start spans midnight (the window opens on the listed
// day and closes the next).
func ParseWindow(s string) (*Window, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty window; write days, times and an optional time zone, such as \"Mon-Fri 09:00-17:00 Europe/Berlin\"")
	}
	w := &Window{Expr: s, Location: time.UTC}
	if strings.Contains(fields[0], ":") {
		fields = append([]string{"daily"}, fields...)
	}
	if len(fields) < 2 {
		return nil, fmt.Errorf("window %q has no time range; write it as \"%s 09:00-17:00\"", s, fields[0])
	}
	if len(fields) > 3 {
		return nil, fmt.Errorf("window %q has too many parts; write days, times and an optional time zone, such as \"Mon-Fri 09:00-17:00 Europe/Berlin\"", s)
	}
	if err := parseDays(fields[0], &w.Days); err != nil {
		return nil, fmt.Errorf("window %q: %w", s, err)
	}
	from, to, ok := strings.Cut(fields[1], "-")
	if !ok {
		return nil, fmt.Errorf("window %q: time range %q must be START-END, such as 09:00-17:00", s, fields[1])
	}
	var err error
	if w.Start, err = parseClock(from, false); err != nil {
		return nil, fmt.Errorf("window %q: %w", s, err)
	}
	if w.End, err = parseClock(to, true); err != nil {
		return nil, fmt.Errorf("window %q: %w", s, err)
	}
	if w.Start == w.End {
		return nil, fmt.Errorf("window %q opens and closes at the same time; for a window open all day write 00:00-24:00", s)
	}
	if len(fields) == 3 {
		name := fields[2]
		if name == "Local" || name == "" {
			return nil, fmt.Errorf("window %q: name the time zone explicitly, such as UTC or Europe/Berlin", s)
		}
		loc, err := loadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("window %q: unknown time zone %q; use an IANA name such as UTC, Europe/Berlin or America/New_York", s, name)
		}
		w.Location = loc
	}
	return w, nil
}

// locations caches time zones by name: loading one parses its tzdata, and
// thousands of policies name the same few zones.
var locations sync.Map

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

func parseDays(s string, days *[7]bool) error {
	if s == "*" || strings.EqualFold(s, "daily") {
		for i := range days {
			days[i] = true
		}
		return nil
	}
	for item := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, ok := dayNames[strings.ToLower(from)]
		if !ok {
			return fmt.Errorf("unknown day %q; %s", from, dayHelp)
		}
		if !isRange {
			days[a] = true
			continue
		}
		b, ok := dayNames[strings.ToLower(to)]
		if !ok {
			return fmt.Errorf("unknown day %q; %s", to, dayHelp)
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return nil
}

func parseClock(s string, end bool) (time.Duration, error) {
	hs, ms, ok := strings.Cut(s, ":")
	bad := func() error {
		return fmt.Errorf("invalid time %q; use HH:MM between 00:00 and 23:59 (24:00 as an end)", s)
	}
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 {
		return 0, bad()
	}
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || hs[0] == '+' || hs[0] == '-' || ms[0] == '+' || ms[0] == '-' {
		return 0, bad()
	}
	if end && h == 24 && m == 0 {
		return 24 * time.Hour, nil
	}
	if h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, bad()
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// clock returns the wall-clock time of day of t in w's zone, as an offset
// from midnight, and t's weekday there.
func (w *Window) clock(t time.Time) (time.Duration, time.Weekday) {
	l := t.In(w.location())
	c := time.Duration(l.Hour())*time.Hour + time.Duration(l.Minute())*time.Minute +
		time.Duration(l.Second())*time.Second + time.Duration(l.Nanosecond())
	return c, l.Weekday()
}

func (w *Window) location() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// Contains reports whether t falls inside the window. Times are compared
// by wall clock in the window's zone, so a window keeps its local hours
// across daylight saving changes.
func (w *Window) Contains(t time.Time) bool {
	c, wd := w.clock(t)
	if w.Start < w.End {
		return w.Days[wd] && c >= w.Start && c < w.End
	}
	prev := (wd + 6) % 7
	return (w.Days[wd] && c >= w.Start) || (w.Days[prev] && c < w.End)
}

// NextOpen returns the first instant at or after t inside the window: t
// itself when the window is open. It returns the zero time only for a
// window with no days.
func (w *Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	var best time.Time
	consider := func(c time.Time) {
		if !c.Before(t) && w.Contains(c) && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	loc := w.location()
	l := t.In(loc)
	sh, sm := int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute)
	// The window can only be entered where the wall clock reaches Start
	// (twice on a day whose clock is turned back) or where the clock jumps
	// at a zone transition; every such instant within eight days is a
	// candidate.
	for i := -1; i <= 8; i++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+i, 12, 0, 0, 0, loc)
		c := time.Date(day.Year(), day.Month(), day.Day(), sh, sm, 0, 0, loc)
		consider(c)
		for _, shift := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
			consider(c.Add(-shift))
			consider(c.Add(shift))
		}
	}
	limit := t.Add(9 * Day)
	for x := l; ; {
		_, end := x.ZoneBounds()
		if end.IsZero() || end.After(limit) || !end.After(x) {
			break
		}
		consider(end)
		x = end
	}
	return best
}

// OpenPerDay is how long the window stays open on each of its days.
func (w *Window) OpenPerDay() time.Duration {
	if w.End > w.Start {
		return w.End - w.Start
	}
	return 24*time.Hour - w.Start + w.End
}
