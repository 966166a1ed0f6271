//go:build unix

package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
)

// server is what every started server shares: the account it runs as and
// its process.
type server struct {
	acct account
	mu   sync.Mutex
	proc *testproc.Process
}

func (s *server) setProc(p *testproc.Process) {
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// Kill stops the server at once with SIGKILL, as a crash would.
func (s *server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	p.Kill()
}

// serverDir makes a directory for one test's server, owned by the
// service's account and removed when the test ends, holding a copy of the
// template's data directory when template is set.
func serverDir(t testing.TB, service, prefix, template string) (account, string) {
	t.Helper()
	acct, err := serviceAccount(service)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := acct.chown(dir); err != nil {
		t.Fatal(err)
	}
	if template != "" {
		if out, err := exec.Command("cp", "-a", filepath.Join(template, "data"), filepath.Join(dir, "data")).CombinedOutput(); err != nil {
			t.Fatalf("copying the template: %v: %s", err, out)
		}
	}
	return acct, dir
}

// startForTest starts a server with start, kills it when the test ends and
// then, when the test failed, prints the last lines of its log.
func startForTest(t testing.TB, name, logPath string, lines int, s interface{ Kill() }, start func() error) {
	t.Helper()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logPath, testproc.Tail(logPath, lines, nil))
		}
	})
	if err := start(); err != nil {
		t.Fatal(err)
	}
}

// waitAnswer calls try every interval until it succeeds, the process
// exits or ctx ends.
func waitAnswer(ctx context.Context, name, logPath string, p *testproc.Process, every time.Duration, try func(context.Context) error) error {
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		if p.Exited() {
			return errors.New(name + " exited: " + testproc.Tail(logPath, 20, nil))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer: %w", name, err)
		case <-time.After(every):
		}
	}
}

// publishTemplate finishes a template built in tmp: it removes the scratch
// files, marks it ready and moves it to final, where another test binary
// may have put one first.
func publishTemplate(tmp, final string, scratch ...string) error {
	for _, f := range scratch {
		_ = os.Remove(filepath.Join(tmp, f))
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), nil, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, "ready")); serr == nil {
			return nil
		}
		return err
	}
	return nil
}
