// Package faultinject holds the failpoints that a test binary enables for
// every engine of its process, when the code that builds the engine is not
// the test's (the crash matrix of cmd/rekey runs its own test binary as the
// daemon). Only _test.go files call Enable; a production binary has no
// environment variable, flag or setting that turns failpoints on, so it
// cannot be told to fail or kill itself. TestOnlyTestFilesEnable in
// package rotator enforces this.
package faultinject

import (
	"maps"
	"sync"
)

var (
	mu     sync.Mutex
	points map[string]string
)

// Enable sets the failpoints (name to action, see rotator.ParseFailpoints)
// that engines created afterwards use when their options name none. Call
// it only from a _test.go file.
func Enable(p map[string]string) {
	mu.Lock()
	defer mu.Unlock()
	points = maps.Clone(p)
}

// Points returns the failpoints enabled by Enable, or nil.
func Points() map[string]string {
	mu.Lock()
	defer mu.Unlock()
	return maps.Clone(points)
}
