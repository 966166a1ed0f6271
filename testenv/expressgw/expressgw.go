// Package expressgw starts a real Express Gateway 1.16.11 (installed from
// the npm registry by testenv/expressgw/install.sh) for tests: its proxy
// and its admin API both bound to 127.0.0.1 on random ports, in-memory
// storage, its own temporary directory, stopped when the test ends.
//
// The gateway proxies /api/* to a backend URL the test gives, behind the
// key-auth policy: clients send "Authorization: apiKey KEYID:KEYSECRET",
// and unknown or deactivated keys get 401.
//
// Tests find the installation through the environment variable
// REKEY_EXPRESSGW_DIR. Without it they are skipped, unless
// REKEY_TEST_REQUIRE_SERVERS=1 (as in CI), which turns the skip into a
// failure:
//
//	export REKEY_EXPRESSGW_DIR="$(sh testenv/expressgw/install.sh)"
//	go test ./e2e/ -run Gateway
package expressgw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
)

// Version is the Express Gateway version install.sh installs.
const Version = "1.16.11"

// EnvDir names the environment variable holding the installation
// directory printed by install.sh.
const EnvDir = "REKEY_EXPRESSGW_DIR"

// EnvRequire names the environment variable that, set to 1, makes a
// missing gateway a test failure instead of a skip.
const EnvRequire = "REKEY_TEST_REQUIRE_SERVERS"

// Gateway is a running Express Gateway.
type Gateway struct {
	// AdminURL is the admin API, such as http://127.0.0.1:41234.
	AdminURL string
	// ProxyURL is the gateway's proxy; /api/* goes to the backend.
	ProxyURL string
	// LogPath is the file that receives the gateway's output.
	LogPath string
	// Dir is the gateway's temporary directory (its config).
	Dir string
	// Startup is how long the gateway took from exec to answering on both
	// ports.
	Startup time.Duration

	cmd    *exec.Cmd
	done   chan struct{}
	client *http.Client
}

// Installation returns the directory named by REKEY_EXPRESSGW_DIR, or skips
// the test (fails it when REKEY_TEST_REQUIRE_SERVERS=1) when there is none.
func Installation(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	msg := "Express Gateway not available: run testenv/expressgw/install.sh and set " + EnvDir
	if dir == "" {
		unavailable(t, msg)
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "express-gateway", "package.json")); err != nil {
		unavailable(t, fmt.Sprintf("%s (%v)", msg, err))
		return ""
	}
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "node not found: apt-get install nodejs")
		return ""
	}
	return dir
}

func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

const gatewayConfig = `http:
  hostname: 127.0.0.1
  port: %d
admin:
  host: 127.0.0.1
  port: %d
apiEndpoints:
  api:
    host: '*'
    paths: '/api/*'
serviceEndpoints:
  backend:
    url: '%s'
policies:
  - key-auth
  - proxy
pipelines:
  default:
    apiEndpoints:
      - api
    policies:
      - key-auth:
      - proxy:
          - action:
              serviceEndpoint: backend
              changeOrigin: true
`

const systemConfig = `db:
  redis:
    emulate: true
    namespace: EG
crypto:
  cipherKey: %s
  algorithm: aes256
  saltRounds: 4
session:
  secret: %s
  resave: false
  saveUninitialized: false
accessTokens:
  timeToExpiry: 7200000
refreshTokens:
  timeToExpiry: 7200000
authorizationCodes:
  timeToExpiry: 300000
`

// Start starts a gateway whose /api/* pipeline proxies to backend (a URL
// such as http://127.0.0.1:PORT) behind key-auth, and stops it (its whole
// process group) when the test ends. When the test fails, the tail of the
// gateway's log is printed.
func Start(t testing.TB, backend string) *Gateway {
	t.Helper()
	inst := Installation(t)
	u, err := url.Parse(backend)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("expressgw: the backend must be an http://127.0.0.1:PORT URL, got %q", backend)
	}
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(inst, "node_modules", "express-gateway", "lib", "config", "models")
	if err := os.CopyFS(filepath.Join(cfgDir, "models"), os.DirFS(models)); err != nil {
		t.Fatalf("copying the gateway's models: %v", err)
	}
	proxyPort, adminPort := freePort(t), freePort(t)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gateway.config.yml", fmt.Sprintf(gatewayConfig, proxyPort, adminPort, backend))
	write("system.config.yml", fmt.Sprintf(systemConfig, randomWord(), randomWord()))

	g := &Gateway{
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		ProxyURL: fmt.Sprintf("http://127.0.0.1:%d", proxyPort),
		LogPath:  filepath.Join(dir, "gateway.log"),
		Dir:      dir,
		done:     make(chan struct{}),
		client:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	logFile, err := os.Create(g.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(inst, "node_modules", "express-gateway")
	g.cmd = exec.Command("node", "-e", "require(process.argv[1])().load(process.argv[2]).run()", main, cfgDir)
	g.cmd.Dir = dir
	g.cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "NODE_ENV=production", "LOG_LEVEL=info"}
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	setProcessGroup(g.cmd)
	start := time.Now()
	err = g.cmd.Start()
	_ = logFile.Close()
	if err != nil {
		t.Fatalf("starting express gateway: %v", err)
	}
	go func() {
		_ = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("express gateway log (%s):\n%s", g.LogPath, testproc.Tail(g.LogPath, 40, nil))
		}
	})
	if err := g.waitReady(60 * time.Second); err != nil {
		t.Fatalf("express gateway did not start: %v\n%s", err, testproc.Tail(g.LogPath, 40, nil))
	}
	g.Startup = time.Since(start)
	t.Logf("express gateway %s ready in %s (admin %s, proxy %s)", Version, g.Startup.Round(time.Millisecond), g.AdminURL, g.ProxyURL)
	return g
}

// Stop kills the gateway and waits for it to exit. Calling it twice is
// fine.
func (g *Gateway) Stop() {
	select {
	case <-g.done:
	default:
		killProcess(g.cmd)
	}
	<-g.done
	g.client.CloseIdleConnections()
}

func (g *Gateway) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *Gateway) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	for {
		if g.exited() {
			return errors.New("the gateway exited")
		}
		ok := 0
		if resp, err := c.Get(g.AdminURL + "/users"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok++
			}
		}
		if resp, err := c.Get(g.ProxyURL + "/api/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				ok++
			}
		}
		if ok == 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Admin sends one admin API request with a JSON body (nil for none) and
// decodes a JSON answer into out (nil to ignore it). It returns the status.
func (g *Gateway) Admin(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.AdminURL+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Credential is a key-auth credential as the admin API shows it.
type Credential struct {
	KeyID      string `json:"keyId"`
	KeySecret  string `json:"keySecret"`
	IsActive   bool   `json:"isActive"`
	ConsumerID string `json:"consumerId"`
	CreatedAt  string `json:"createdAt"`
}

// CreateUser makes a user (a consumer) and returns its id.
func (g *Gateway) CreateUser(t testing.TB, username string) string {
	t.Helper()
	var u struct {
		ID string `json:"id"`
	}
	if _, err := g.Admin(context.Background(), http.MethodPost, "/users", map[string]string{"username": username, "firstname": username, "lastname": "test"}, &u); err != nil {
		t.Fatalf("creating gateway user %s: %v", username, err)
	}
	return u.ID
}

// CreateKey makes a key-auth credential for a consumer (keyID may be
// empty: the gateway picks one).
func (g *Gateway) CreateKey(t testing.TB, consumer, keyID string) Credential {
	t.Helper()
	cred := map[string]string{}
	if keyID != "" {
		cred["keyId"] = keyID
	}
	var c Credential
	if _, err := g.Admin(context.Background(), http.MethodPost, "/credentials", map[string]any{"consumerId": consumer, "type": "key-auth", "credential": cred}, &c); err != nil {
		t.Fatalf("creating a key-auth credential for %s: %v", consumer, err)
	}
	return c
}

// Credentials lists the credentials of a consumer.
func (g *Gateway) Credentials(ctx context.Context, consumer string) ([]Credential, error) {
	var out struct {
		Credentials []Credential `json:"credentials"`
	}
	if _, err := g.Admin(ctx, http.MethodGet, "/credentials/"+url.PathEscape(consumer), nil, &out); err != nil {
		return nil, err
	}
	return out.Credentials, nil
}

// Call sends GET ProxyURL+path with "Authorization: apiKey ID:SECRET" and
// returns the status.
func (g *Gateway) Call(ctx context.Context, path, keyID, keySecret string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.ProxyURL+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "apiKey "+keyID+":"+keySecret)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func freePort(t testing.TB) int {
	t.Helper()
	p, err := testproc.FreePort()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	return p
}

func randomWord() string { return rand.Text() }
