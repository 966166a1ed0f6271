package rotator

import (
	"context"
	"sync"
)

// RotateEach rotates the named policies as Rotate does, up to
// MaxConcurrent at once, and calls done (never concurrently) with each
// policy's index in names and outcome as it finishes. Once ctx is
// cancelled no further rotation starts; those not started are reported
// with ctx's error. Concurrent rotations share journal commits.
func (e *Engine) RotateEach(ctx context.Context, names []string, o RotateOptions, done func(i int, out Outcome, err error)) {
	var mu sync.Mutex
	report := func(i int, out Outcome, err error) {
		mu.Lock()
		defer mu.Unlock()
		done(i, out, err)
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(MaxConcurrent, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := ctx.Err(); err != nil {
					report(i, Outcome{Policy: names[i]}, err)
					continue
				}
				out, err := e.Rotate(ctx, names[i], o)
				report(i, out, err)
			}
		}()
	}
	for i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}
