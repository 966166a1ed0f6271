package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// eventRecorder is a service.Logger that keeps what it is given.
type eventRecorder struct{ events []string }

func (r *eventRecorder) add(level string, v ...any) error {
	r.events = append(r.events, level+": "+fmt.Sprint(v...))
	return nil
}
func (r *eventRecorder) Error(v ...any) error            { return r.add("error", v...) }
func (r *eventRecorder) Warning(v ...any) error          { return r.add("warning", v...) }
func (r *eventRecorder) Info(v ...any) error             { return r.add("info", v...) }
func (r *eventRecorder) Errorf(f string, v ...any) error { return r.add("error", fmt.Sprintf(f, v...)) }
func (r *eventRecorder) Warningf(f string, v ...any) error {
	return r.add("warning", fmt.Sprintf(f, v...))
}
func (r *eventRecorder) Infof(f string, v ...any) error { return r.add("info", fmt.Sprintf(f, v...)) }

var clock = regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`)

func TestEventLogWriter(t *testing.T) {
	t.Parallel()
	rec := &eventRecorder{}
	w := newEventLogWriter(rec)
	w.Write([]byte("/etc/rekey/p.hcl:3:1: Error: Unsupported argument\n  An argument named \"x\" is not expected here.\n\n"))
	log := zerolog.New(w).With().Timestamp().Logger()
	log.Info().Int("policies", 2).Msg("rekey started")
	log.Warn().Str("policy", "db").Msg("probe retry")
	log.Error().Err(os.ErrPermission).Str("policy", "db").Msg("rotation failed")
	w.Write([]byte("p.hcl:1:1: Warning: Deprecated attribute\n"))
	console := zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05"}).With().Timestamp().Logger()
	console.Warn().Msg("slow probe")
	w.Write([]byte("rekey: /etc/rekey: 1 error"))
	w.Close()
	want := []string{
		"error: /etc/rekey/p.hcl:3:1: Error: Unsupported argument\n  An argument named \"x\" is not expected here.",
		"info: rekey started\npolicies: 2",
		"warning: probe retry\npolicy: db",
		"error: rotation failed\nerror: permission denied\npolicy: db",
		"warning: p.hcl:1:1: Warning: Deprecated attribute",
		"warning: HH:MM:SS WRN slow probe",
		"error: rekey: /etc/rekey: 1 error",
	}
	for i, e := range rec.events {
		rec.events[i] = clock.ReplaceAllString(e, "HH:MM:SS")
	}
	if strings.Join(rec.events, "\n---\n") != strings.Join(want, "\n---\n") {
		t.Fatalf("events:\n%s\n\nwant:\n%s", strings.Join(rec.events, "\n---\n"), strings.Join(want, "\n---\n"))
	}
}
