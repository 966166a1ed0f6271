// Package vaulttest starts a real HashiCorp Vault server (the binary built
// by testenv/vault/build.sh) for tests: a dev-mode server on 127.0.0.1 with
// a random root token, in-memory storage and its own temporary directory,
// stopped when the test ends.
//
// Tests find the binary through the environment variable REKEY_VAULT_BIN.
// Without it they are skipped, unless REKEY_TEST_REQUIRE_SERVERS=1 (as in
// CI), which turns the skip into a failure:
//
//	export REKEY_VAULT_BIN="$(testenv/vault/build.sh)"
//	go test ./sinks/vaultkv/...
package vaulttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
)

// EnvBinary names the environment variable holding the vault binary path.
const EnvBinary = "REKEY_VAULT_BIN"

// EnvRequire names the environment variable that, set to 1, makes a missing
// server a test failure instead of a skip.
const EnvRequire = "REKEY_TEST_REQUIRE_SERVERS"

// Server is a running Vault dev server.
type Server struct {
	// Addr is the server's address, such as http://127.0.0.1:41234.
	Addr string
	// RootToken is the root token of the dev server.
	RootToken string
	// Client is an API client logged in with the root token.
	Client *api.Client
	// LogPath is the file that receives the server's output.
	LogPath string
	// Dir is the server's temporary directory.
	Dir string

	// CACert is the CA certificate file of a server started with TLS.
	CACert string

	unsealKey string
	proc      *testproc.Process
	closeIdle func()
}

// Stop kills the server (its whole process group) and waits for it to
// exit. Start arranges it at the end of the test; calling it earlier, or
// twice, is fine.
func (s *Server) Stop() {
	if s.closeIdle != nil {
		s.closeIdle()
	}
	s.proc.Kill()
}

// Option changes how Start runs the server.
type Option func(*options)

type options struct{ tls bool }

// TLS serves https with a certificate signed by a CA generated for the
// test (vault server -dev-tls); Server.CACert names the CA file.
func TLS() Option { return func(o *options) { o.tls = true } }

// Binary returns the vault binary named by REKEY_VAULT_BIN, or skips the
// test (fails it when REKEY_TEST_REQUIRE_SERVERS=1) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		unavailable(t, "vault binary not available: run testenv/vault/build.sh and set "+EnvBinary)
		return ""
	}
	if _, err := os.Stat(bin); err != nil {
		unavailable(t, fmt.Sprintf("vault binary not available (%v): run testenv/vault/build.sh and set %s", err, EnvBinary))
		return ""
	}
	return bin
}

func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Start starts a dev server for the test and stops it (its whole process
// group) when the test ends. When the test fails, the tail of the server's
// log is printed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t)
	dir := t.TempDir()
	token := "root-" + testproc.RandomHex(12)
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	s := &Server{
		Addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		RootToken: token,
		LogPath:   filepath.Join(dir, "vault.log"),
		Dir:       dir,
	}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatalf("creating vault log: %v", err)
	}
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + token,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-dev-no-store-token",
	}
	if o.tls {
		certDir := filepath.Join(dir, "tls")
		if err := os.Mkdir(certDir, 0o700); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		s.Addr = fmt.Sprintf("https://127.0.0.1:%d", port)
		s.CACert = filepath.Join(certDir, "vault-ca.pem")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"VAULT_DISABLE_MLOCK=true",
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	s.proc, err = testproc.Start(cmd)
	_ = logFile.Close()
	if err != nil {
		t.Fatalf("starting vault: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("vault server log (%s):\n%s", s.LogPath, tail(s.LogPath, 60))
		}
	})

	if o.tls {
		if err := s.waitFile(s.CACert, 30*time.Second); err != nil {
			t.Fatalf("vault did not write its CA: %v\n%s", err, tail(s.LogPath, 60))
		}
	}
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	if o.tls {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			t.Fatalf("configuring TLS: %v", err)
		}
	}
	s.Client, err = api.NewClient(cfg)
	if err != nil {
		t.Fatalf("creating vault client: %v", err)
	}
	s.Client.SetToken(token)
	s.closeIdle = cfg.HttpClient.CloseIdleConnections

	if err := s.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("vault did not become healthy: %v\n%s", err, tail(s.LogPath, 60))
	}
	return s
}

func (s *Server) waitFile(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s: %v", path, err)
		}
		if s.proc.Exited() {
			return errors.New("vault exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second}
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	defer hc.CloseIdleConnections()
	delay := 10 * time.Millisecond
	for {
		if s.proc.Exited() {
			return errors.New("vault exited")
		}
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("sys/health: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// KVOption configures a KV mount made by EnableKV.
type KVOption func(opts map[string]string, tune map[string]any)

// CASRequired makes every write to the KV v2 mount require check-and-set.
func CASRequired() KVOption {
	return func(_ map[string]string, tune map[string]any) { tune["cas_required"] = true }
}

// MaxVersions limits the versions kept per secret of a KV v2 mount.
func MaxVersions(n int) KVOption {
	return func(_ map[string]string, tune map[string]any) { tune["max_versions"] = n }
}

// EnableKV mounts a KV secrets engine of the given version (1 or 2) at path.
func (s *Server) EnableKV(t testing.TB, path string, version int, opts ...KVOption) {
	t.Helper()
	mo := map[string]string{"version": fmt.Sprint(version)}
	cfg := map[string]any{}
	for _, o := range opts {
		o(mo, cfg)
	}
	if err := s.Client.Sys().Mount(path, &api.MountInput{Type: "kv", Options: mo}); err != nil {
		t.Fatalf("mounting kv v%d at %s: %v", version, path, err)
	}
	if len(cfg) > 0 {
		if version != 2 {
			t.Fatalf("kv options need version 2")
		}
		if _, err := s.Client.Logical().Write(path+"/config", cfg); err != nil {
			t.Fatalf("configuring kv mount %s: %v", path, err)
		}
	}
}

// EnableAppRole enables the AppRole auth method at mount.
func (s *Server) EnableAppRole(t testing.TB, mount string) {
	t.Helper()
	if err := s.Client.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enabling approle at %s: %v", mount, err)
	}
}

// WritePolicy writes an ACL policy.
func (s *Server) WritePolicy(t testing.TB, name, rules string) {
	t.Helper()
	if err := s.Client.Sys().PutPolicy(name, rules); err != nil {
		t.Fatalf("writing policy %s: %v", name, err)
	}
}

// CreateRole creates (or updates) an AppRole role with the given parameters
// (token_policies, token_ttl, ...) and returns its role id.
func (s *Server) CreateRole(t testing.TB, mount, role string, params map[string]any) string {
	t.Helper()
	if _, err := s.Client.Logical().Write("auth/"+mount+"/role/"+role, params); err != nil {
		t.Fatalf("creating role %s: %v", role, err)
	}
	sec, err := s.Client.Logical().Read("auth/" + mount + "/role/" + role + "/role-id")
	if err != nil || sec == nil {
		t.Fatalf("reading role id of %s: %v", role, err)
	}
	return sec.Data["role_id"].(string)
}

// NewSecretID creates a secret id for an AppRole role and returns it with
// its accessor.
func (s *Server) NewSecretID(t testing.TB, mount, role string) (secretID, accessor string) {
	t.Helper()
	sec, err := s.Client.Logical().Write("auth/"+mount+"/role/"+role+"/secret-id", nil)
	if err != nil || sec == nil {
		t.Fatalf("creating secret id for %s: %v", role, err)
	}
	return sec.Data["secret_id"].(string), sec.Data["secret_id_accessor"].(string)
}

// Login logs in with AppRole credentials and returns the token, or the
// error.
func (s *Server) Login(mount, roleID, secretID string) (string, error) {
	c, err := s.Client.Clone()
	if err != nil {
		return "", err
	}
	c.ClearToken()
	sec, err := c.Logical().Write("auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return "", err
	}
	if sec == nil || sec.Auth == nil {
		return "", errors.New("login returned no token")
	}
	return sec.Auth.ClientToken, nil
}

// Seal seals the server.
func (s *Server) Seal(t testing.TB) {
	t.Helper()
	if err := s.Client.Sys().Seal(); err != nil {
		t.Fatalf("sealing vault: %v", err)
	}
}

// Unseal unseals the server with the dev unseal key from its log.
func (s *Server) Unseal(t testing.TB) {
	t.Helper()
	key, err := s.devUnsealKey()
	if err != nil {
		t.Fatalf("finding the dev unseal key: %v", err)
	}
	st, err := s.Client.Sys().Unseal(key)
	if err != nil {
		t.Fatalf("unsealing vault: %v", err)
	}
	if st.Sealed {
		t.Fatal("vault still sealed after unseal")
	}
	if err := s.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("vault not healthy after unseal: %v", err)
	}
}

var unsealKeyRE = regexp.MustCompile(`(?m)^Unseal Key: (\S+)$`)

func (s *Server) devUnsealKey() (string, error) {
	if s.unsealKey != "" {
		return s.unsealKey, nil
	}
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return "", err
	}
	m := unsealKeyRE.FindSubmatch(b)
	if m == nil {
		return "", errors.New("no \"Unseal Key:\" line in the dev server's log")
	}
	s.unsealKey = string(m[1])
	return s.unsealKey, nil
}

// Sealed reports whether the server is sealed.
func (s *Server) Sealed(ctx context.Context) (bool, error) {
	st, err := s.Client.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return false, err
	}
	return st.Sealed, nil
}

// tail is the end of the server log, with the unseal key and root token
// redacted.
func tail(path string, n int) string {
	return testproc.Tail(path, n, func(line string) string {
		if strings.HasPrefix(line, "Unseal Key:") || strings.HasPrefix(line, "Root Token:") {
			return strings.SplitAfter(line, ":")[0] + " [REDACTED]"
		}
		return line
	})
}
