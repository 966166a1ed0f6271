package rotator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// FailpointEnv names the environment variable through which a crash test
// hands failpoints to the test binary it runs as the daemon: that binary's
// TestMain parses it with ParseFailpoints and passes the result to
// internal/faultinject. The syntax is a comma-separated list of NAME=ACTION,
// where NAME is STEP.before or STEP.after (e.g. "promote.after") and
// ACTION is "kill" (the process kills itself with SIGKILL, like a crash),
// "error" (the call fails) or "panic". No production code reads it.
const FailpointEnv = "REKEY_FAILPOINTS"

// ErrFailpoint is returned by a failpoint whose action is "error".
var ErrFailpoint = errors.New("failpoint triggered")

// failpoints is the set enabled for one engine.
type failpoints struct {
	mu     sync.Mutex
	action map[string]string
	hits   map[string]int
}

// ParseFailpoints parses the FailpointEnv syntax.
func ParseFailpoints(spec string) (map[string]string, error) {
	out := map[string]string{}
	known := map[string]bool{}
	for _, f := range Failpoints {
		known[f] = true
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, action, ok := strings.Cut(part, "=")
		if !ok {
			action = "error"
		}
		if !known[name] {
			return nil, fmt.Errorf("unknown failpoint %q (known: %s)", name, strings.Join(Failpoints, ", "))
		}
		switch action {
		case "kill", "error", "panic":
		default:
			return nil, fmt.Errorf("failpoint %s: unknown action %q (kill, error or panic)", name, action)
		}
		out[name] = action
	}
	return out, nil
}

func (f *failpoints) enabled() []string {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n, a := range f.action {
		names = append(names, n+"="+a)
	}
	sort.Strings(names)
	return names
}

// hit triggers the failpoint name if it is enabled.
func (f *failpoints) hit(_ context.Context, name string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	action, ok := f.action[name]
	if ok {
		f.hits[name]++
	}
	f.mu.Unlock()
	if !ok {
		return nil
	}
	switch action {
	case "kill":
		killSelf()
		select {} // the signal is on its way
	case "panic":
		panic("failpoint " + name)
	}
	return fmt.Errorf("%s: %w", name, ErrFailpoint)
}
