//go:build unix

// Package etcdtest starts a real etcd cluster for tests: Debian's
// etcd-server (3.4), which testenv/test-all.sh installs, as plain processes
// in a temporary directory, each member listening on free 127.0.0.1 ports,
// killed when the test ends. A test can stop and start members to take
// quorum away and give it back.
//
// When etcd is not installed the test is skipped, unless
// REKEY_TEST_REQUIRE_SERVERS=1 (as in CI), which makes it fail.
package etcdtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvRequire names the environment variable that, set to 1, makes a missing
// etcd a test failure instead of a skip.
const EnvRequire = "REKEY_TEST_REQUIRE_SERVERS"

// Cluster is a running etcd cluster.
type Cluster struct {
	// Dir holds each member's data directory and log.
	Dir     string
	Members []*Member

	bin     string
	initial string
	// TLS files, set by StartTLS: the CA that signed the members' and the
	// client's certificates, and the client's certificate and key.
	CAFile, CertFile, KeyFile string
	server                    *tlsFiles
	client                    *http.Client
}

// Member is one etcd member.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	LogPath   string

	mu   sync.Mutex
	proc *process
	// started is set once the member joined the cluster, so that a restart
	// uses --initial-cluster-state existing.
	started bool
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Available reports whether an etcd binary is on PATH.
func Available() bool {
	_, err := exec.LookPath("etcd")
	return err == nil
}

// Start starts a cluster of n members, waits until every member reports
// healthy, and kills the cluster when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, false)
}

// StartTLS is Start with https client URLs that require a client
// certificate signed by the cluster's CA (CAFile, CertFile, KeyFile).
func StartTLS(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, true)
}

func start(t testing.TB, n int, withTLS bool) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal("etcd not installed (Debian package etcd-server; testenv/test-all.sh installs it)")
		}
		t.Skip("etcd not installed (Debian package etcd-server; testenv/test-all.sh installs it)")
		return nil
	}
	dir, err := os.MkdirTemp("", "rekey-etcd-*")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, bin: bin, client: http.DefaultClient}
	scheme := "http"
	if withTLS {
		files, client, err := makeTLS(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		c.server, c.client = files, client
		c.CAFile, c.CertFile, c.KeyFile = files.ca, files.clientCert, files.clientKey
		scheme = "https"
	}
	var peers []string
	for i := range n {
		cp, pp := freePort(t), freePort(t)
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, cp),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d.etcd", i)),
			LogPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		peers = append(peers, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(peers, ",")
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.kill()
		}
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd member %s log (last lines):\n%s", m.Name, tail(m.LogPath, 6))
			}
		}
		os.RemoveAll(dir)
	})
	for i := range c.Members {
		if err := c.launch(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

func (c *Cluster) launch(i int) error {
	m := c.Members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return nil
	}
	state := "new"
	if m.started {
		state = "existing"
	}
	lf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", state,
		"--initial-cluster-token", "rekey-test",
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
	}
	if c.server != nil {
		args = append(args, "--cert-file", c.server.serverCert, "--key-file", c.server.serverKey,
			"--client-cert-auth", "--trusted-ca-file", c.server.ca)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "TZ=UTC"}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: lf}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	m.proc = p
	m.started = true
	return nil
}

// StopMember stops member i (SIGTERM) and waits for it to exit; its data
// stays, so StartMember brings it back.
func (c *Cluster) StopMember(i int) {
	m := c.Members[i]
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// StartMember starts member i again after StopMember; it does not wait
// for health (without quorum no member is healthy).
func (c *Cluster) StartMember(t testing.TB, i int) {
	t.Helper()
	if err := c.launch(i); err != nil {
		t.Fatal(err)
	}
}

// Running reports whether member i's process runs.
func (c *Cluster) Running(i int) bool {
	m := c.Members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.exited()
}

// WaitHealthy waits until every running member reports healthy (it has a
// leader and answers) or the timeout passes.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var bad []string
		for i, m := range c.Members {
			if !c.Running(i) {
				continue
			}
			if err := health(ctx, c.client, m.ClientURL); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", m.Name, err))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster in %s not healthy: %s", c.Dir, strings.Join(bad, "; "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func health(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

func (m *Member) kill() {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return
	}
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
