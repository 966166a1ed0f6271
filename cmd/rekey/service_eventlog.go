package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/kardianos/service"
)

// consoleLine matches a line of zerolog's console format without colours
// (log { format = "console" }) and captures its level.
var consoleLine = regexp.MustCompile(`^\d\d:\d\d:\d\d (TRC|DBG|INF|WRN|ERR|FTL|PNC) `)

// maxTextLines bounds how many plain-text lines eventLogWriter gathers into
// one event.
const maxTextLines = 100

// eventLogWriter is the stdout and stderr of a daemon hosted by a service
// manager: it turns each JSON log line of the daemon's logger into one
// entry of the service.Logger (the Windows Event Log), with the level of
// the line (lines of zerolog's console format too), and gathers other
// plain-text lines (configuration diagnostics) into one entry, an error
// unless they hold only warnings, sent before the next log line or on Close.
type eventLogWriter struct {
	mu   sync.Mutex
	log  service.Logger
	buf  []byte
	text []string
}

func newEventLogWriter(log service.Logger) *eventLogWriter {
	return &eventLogWriter{log: log}
}

// Write implements io.Writer.
func (w *eventLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		w.line(line)
	}
	return len(p), nil
}

// Close sends what is buffered.
func (w *eventLogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
	w.flushText()
	return nil
}

func (w *eventLogWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	var rec map[string]any
	if strings.HasPrefix(s, "{") && json.Unmarshal([]byte(s), &rec) == nil {
		w.flushText()
		level, _ := rec["level"].(string)
		msg := formatLogRecord(rec)
		switch level {
		case "error", "fatal", "panic":
			_ = w.log.Error(msg)
		case "warn":
			_ = w.log.Warning(msg)
		default:
			_ = w.log.Info(msg)
		}
		return
	}
	if m := consoleLine.FindStringSubmatch(s); m != nil {
		w.flushText()
		switch m[1] {
		case "ERR", "FTL", "PNC":
			_ = w.log.Error(s)
		case "WRN":
			_ = w.log.Warning(s)
		default:
			_ = w.log.Info(s)
		}
		return
	}
	if strings.TrimSpace(s) == "" && len(w.text) == 0 {
		return
	}
	w.text = append(w.text, s)
	if len(w.text) >= maxTextLines {
		w.flushText()
	}
}

func (w *eventLogWriter) flushText() {
	if len(w.text) == 0 {
		return
	}
	msg := strings.TrimRight(strings.Join(w.text, "\n"), "\n ")
	w.text = nil
	if strings.Contains(msg, "Error: ") || !strings.Contains(msg, "Warning: ") {
		_ = w.log.Error(msg)
		return
	}
	_ = w.log.Warning(msg)
}

// formatLogRecord renders a zerolog record as its message followed by one
// "key: value" line per field, in key order; level and time are left out,
// since the Event Log records both.
func formatLogRecord(rec map[string]any) string {
	var b strings.Builder
	msg, _ := rec["message"].(string)
	b.WriteString(msg)
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if k != "message" && k != "level" && k != "time" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, ok := rec[k].(string)
		if !ok {
			j, _ := json.Marshal(rec[k])
			v = string(j)
		}
		fmt.Fprintf(&b, "\n%s: %s", k, v)
	}
	return b.String()
}
