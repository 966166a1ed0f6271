// Package promtest starts a real Prometheus server (Debian's `prometheus`
// package, 2.42) for tests: one process on 127.0.0.1 with its own temporary
// storage, scraping the targets the test names every ScrapeInterval, and
// stopped when the test ends.
//
// The binary is found as REKEY_PROMETHEUS_BIN or `prometheus` on PATH.
// Without it tests are skipped, unless REKEY_TEST_REQUIRE_SERVERS=1 (as in
// CI), which turns the skip into a failure.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ScrapeInterval is how often the server scrapes its targets.
const ScrapeInterval = time.Second

// Server is a running Prometheus.
type Server struct {
	// Addr is the base URL, such as http://127.0.0.1:41234.
	Addr string
	// LogPath receives the server's output.
	LogPath string
	cmd     *exec.Cmd
}

// Binary returns the prometheus binary, or skips the test (fails it when
// REKEY_TEST_REQUIRE_SERVERS=1).
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("REKEY_PROMETHEUS_BIN"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		msg := "prometheus not available: apt-get install prometheus (testenv/test-all.sh installs it)"
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts Prometheus scraping targets (host:port each, path /metrics)
// and waits until it is ready.
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
scrape_configs:
  - job_name: app
    scrape_interval: %s
    static_configs:
      - targets: [%s]
`, ScrapeInterval, ScrapeInterval, ScrapeInterval, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), LogPath: filepath.Join(dir, "prometheus.log")}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn",
	)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting prometheus: %v", err)
	}
	_ = logFile.Close()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(s.LogPath)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Addr + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.LogPath)
			t.Fatalf("prometheus not ready after 30s: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitForData polls query until it returns at least one sample, so that a
// test can start once the targets have been scraped (Prometheus answers an
// empty vector for a few seconds after a target appears).
func (s *Server) WaitForData(ctx context.Context, t testing.TB, query string) {
	t.Helper()
	for {
		n, err := s.count(ctx, query)
		if err == nil && n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no data for %s: %v", query, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Server) count(ctx context.Context, query string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	return len(out.Data.Result), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
