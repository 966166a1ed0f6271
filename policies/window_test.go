package policies

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustWindow(t *testing.T, s string) *Window {
	t.Helper()
	w, err := ParseWindow(s)
	if err != nil {
		t.Fatalf("ParseWindow(%q): %v", s, err)
	}
	return w
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	const M, Tu, W, Th, F, Sa, Su = 1, 2, 3, 4, 5, 6, 0
	days := func(ds ...int) (d [7]bool) {
		for _, x := range ds {
			d[x] = true
		}
		return d
	}
	all := days(0, 1, 2, 3, 4, 5, 6)
	tests := []struct {
		in         string
		days       [7]bool
		start, end time.Duration
		zone       string
	}{
		{"Mon-Thu 09:00-16:00 Europe/Berlin", days(M, Tu, W, Th), 9 * time.Hour, 16 * time.Hour, "Europe/Berlin"},
		{"Mon 09:00-16:00", days(M), 9 * time.Hour, 16 * time.Hour, "UTC"},
		{"Mon,Wed,Fri 9:30-10:00 UTC", days(M, W, F), 9*time.Hour + 30*time.Minute, 10 * time.Hour, "UTC"},
		{"mon-tue,sat 00:00-24:00", days(M, Tu, Sa), 0, 24 * time.Hour, "UTC"},
		{"Fri-Mon 22:00-02:00 America/New_York", days(F, Sa, Su, M), 22 * time.Hour, 2 * time.Hour, "America/New_York"},
		{"daily 01:00-02:00", all, time.Hour, 2 * time.Hour, "UTC"},
		{"* 01:00-02:00", all, time.Hour, 2 * time.Hour, "UTC"},
		{"01:00-02:00 Asia/Tokyo", all, time.Hour, 2 * time.Hour, "Asia/Tokyo"},
		{"  Sunday   23:00-23:59  ", days(Su), 23 * time.Hour, 23*time.Hour + 59*time.Minute, "UTC"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", tt.in, err)
			continue
		}
		if w.Days != tt.days || w.Start != tt.start || w.End != tt.end || w.Location.String() != tt.zone || w.Expr != tt.in {
			t.Errorf("ParseWindow(%q) = %v %v %v %v, want %v %v %v %v", tt.in, w.Days, w.Start, w.End, w.Location, tt.days, tt.start, tt.end, tt.zone)
		}
	}

	bad := map[string]string{
		"":                             "empty window",
		"Mon":                          "no time range",
		"Mon-Thx 09:00-16:00":          `unknown day "Thx"`,
		"Mon,,Tue 09:00-16:00":         `unknown day ""`,
		"Mon 09:00":                    "must be START-END",
		"Mon 9-17":                     `invalid time "9"`,
		"Mon 24:00-01:00":              `invalid time "24:00"`,
		"Mon 09:60-10:00":              `invalid time "09:60"`,
		"Mon 09:00-10:0":               `invalid time "10:0"`,
		"Mon 0900-1000":                `invalid time "0900"`,
		"Mon +9:00-10:00":              `invalid time "+9:00"`,
		"Mon 09:00-09:00":              "same time",
		"Mon 09:00-10:00 Mars/Olympus": `unknown time zone "Mars/Olympus"`,
		"Mon 09:00-10:00 Local":        "name the time zone",
		"Mon 09:00-10:00 UTC extra":    "too many parts",
	}
	for in, want := range bad {
		_, err := ParseWindow(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWindow(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		window string
		at     string
		want   bool
	}{
		// 2025-06-02 is a Monday; Berlin is UTC+2 in summer.
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T07:00:00Z", true},
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T06:59:59Z", false},
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T13:59:59Z", true},
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T14:00:00Z", false},
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-06T08:00:00Z", false},
		// In winter the same local hours are an hour later in UTC.
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-12-01T07:30:00Z", false},
		{"Mon-Thu 09:00-16:00 Europe/Berlin", "2025-12-01T08:00:00Z", true},
		// Spanning midnight: open Friday 22:00 until Saturday 02:00.
		{"Fri 22:00-02:00", "2025-06-06T22:00:00Z", true},
		{"Fri 22:00-02:00", "2025-06-07T01:59:00Z", true},
		{"Fri 22:00-02:00", "2025-06-07T02:00:00Z", false},
		{"Fri 22:00-02:00", "2025-06-07T22:30:00Z", false},
		{"Fri 22:00-02:00", "2025-06-06T01:00:00Z", false},
		{"Fri 22:00-02:00", "2025-06-06T21:59:59Z", false},
		// Spanning the end of the week.
		{"Sun 23:00-01:00", "2025-06-09T00:30:00Z", true},
		{"Sun 23:00-01:00", "2025-06-08T00:30:00Z", false},
		// 24:00 as the end.
		{"Sun 22:00-24:00", "2025-06-08T23:59:59Z", true},
		{"Sun 22:00-24:00", "2025-06-09T00:00:00Z", false},
		// On 2025-03-30 Berlin skips 02:00-03:00 (01:00Z); 03:10 local is inside.
		{"daily 02:30-03:30 Europe/Berlin", "2025-03-30T01:10:00Z", true},
		{"daily 02:30-03:30 Europe/Berlin", "2025-03-30T00:59:00Z", false},
		// On 2025-10-26 Berlin repeats 02:00-03:00: both 02:40 are inside.
		{"daily 02:30-02:45 Europe/Berlin", "2025-10-26T00:40:00Z", true},
		{"daily 02:30-02:45 Europe/Berlin", "2025-10-26T01:40:00Z", true},
		{"daily 02:30-02:45 Europe/Berlin", "2025-10-26T01:00:00Z", false},
	}
	for _, tt := range tests {
		w := mustWindow(t, tt.window)
		if got := w.Contains(mustTime(t, tt.at)); got != tt.want {
			t.Errorf("%q.Contains(%s) = %v, want %v", tt.window, tt.at, got, tt.want)
		}
	}
}

func TestWindowNextOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, window, from, want string
	}{
		{"inside returns the instant itself", "Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T10:11:12Z", "2025-06-02T10:11:12Z"},
		{"after closing opens the next day", "Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T15:00:00Z", "2025-06-03T07:00:00Z"},
		{"Thursday evening waits for Monday", "Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-05T15:00:00Z", "2025-06-09T07:00:00Z"},
		{"before opening the same day", "Mon-Thu 09:00-16:00 Europe/Berlin", "2025-06-02T05:00:00Z", "2025-06-02T07:00:00Z"},
		{"crossing into winter time", "Mon 09:00-10:00 Europe/Berlin", "2025-10-21T09:00:00Z", "2025-10-27T08:00:00Z"},
		{"spanning midnight, before", "Fri 22:00-02:00", "2025-06-06T12:00:00Z", "2025-06-06T22:00:00Z"},
		{"spanning midnight, inside after midnight", "Fri 22:00-02:00", "2025-06-07T01:00:00Z", "2025-06-07T01:00:00Z"},
		{"spanning midnight, after", "Fri 22:00-02:00", "2025-06-07T02:00:00Z", "2025-06-13T22:00:00Z"},
		{"start in the skipped hour opens at the jump", "daily 02:30-03:30 Europe/Berlin", "2025-03-29T23:00:00Z", "2025-03-30T01:00:00Z"},
		{"repeated hour, first pass", "daily 02:30-02:45 Europe/Berlin", "2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z"},
		{"repeated hour, second pass", "daily 02:30-02:45 Europe/Berlin", "2025-10-26T00:50:00Z", "2025-10-26T01:30:00Z"},
		{"window wholly in the skipped hour is closed that day", "daily 02:10-02:20 Europe/Berlin", "2025-03-29T23:00:00Z", "2025-03-31T00:10:00Z"},
		{"end of a week wraps", "Sun 23:00-01:00 America/New_York", "2025-06-09T06:00:00Z", "2025-06-16T03:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.window)
			got := w.NextOpen(mustTime(t, tt.from))
			if want := mustTime(t, tt.want); !got.Equal(want) {
				t.Errorf("%q.NextOpen(%s) = %s, want %s", tt.window, tt.from, got.UTC().Format(time.RFC3339), tt.want)
			}
		})
	}
}

// TestWindowNextOpenAgainstScan compares NextOpen with a minute-by-minute
// scan for windows in zones with daylight saving changes, from random
// instants around the changes.
func TestWindowNextOpenAgainstScan(t *testing.T) {
	t.Parallel()
	windows := []string{
		"daily 02:30-03:30 Europe/Berlin",
		"daily 02:00-02:01 Europe/Berlin",
		"Sun 01:30-03:15 Europe/Berlin",
		"Sat,Sun 23:30-02:30 America/New_York",
		"Mon-Fri 00:00-01:00 America/Santiago",
		"Sun 02:00-02:30 Australia/Lord_Howe",
		"Tue 09:00-17:00 UTC",
		"daily 23:00-00:30 Asia/Kolkata",
	}
	starts := []string{"2025-03-28T00:00:00Z", "2025-10-24T00:00:00Z", "2025-04-04T00:00:00Z", "2025-09-05T00:00:00Z", "2025-11-01T00:00:00Z"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ws := range windows {
		w := mustWindow(t, ws)
		for _, s := range starts {
			base := mustTime(t, s)
			for range 40 {
				from := base.Add(time.Duration(rng.Int64N(int64(4 * Day))))
				got := w.NextOpen(from)
				if got.Before(from) || !w.Contains(got) {
					t.Fatalf("%q.NextOpen(%s) = %s: not an open instant at or after the start", ws, from, got)
				}
				// No open minute between from and got.
				for m := from.Truncate(time.Minute).Add(time.Minute); m.Before(got); m = m.Add(time.Minute) {
					if w.Contains(m) {
						t.Fatalf("%q.NextOpen(%s) = %s, but %s is already open", ws, from, got, m)
					}
				}
			}
		}
	}
}

func TestWindowOpenPerDay(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"Mon 09:00-16:00": 7 * time.Hour,
		"Mon 22:00-02:00": 4 * time.Hour,
		"Mon 00:00-24:00": 24 * time.Hour,
	} {
		if got := mustWindow(t, in).OpenPerDay(); got != want {
			t.Errorf("%q.OpenPerDay() = %v, want %v", in, got, want)
		}
	}
}
