// Package kubetest starts a real kube-apiserver for tests: Debian's etcd
// (etcd-server 3.4) and the kube-apiserver built by testenv/kube/build.sh,
// both on 127.0.0.1 with random ports and their own temporary directory,
// with token authentication and RBAC, stopped when the test ends.
//
// No kubelet or container runtime runs here: objects can be created and
// read, but no pod ever starts, and no controller updates a workload's
// status.
//
// The binary is found through REKEY_KUBE_APISERVER_BIN; etcd on PATH.
// Without them tests are skipped, unless REKEY_TEST_REQUIRE_SERVERS=1.
package kubetest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvBinary names the variable holding the kube-apiserver path.
const EnvBinary = "REKEY_KUBE_APISERVER_BIN"

// Server is a running API server.
type Server struct {
	// URL is the https URL of the API server.
	URL string
	// CAFile is a PEM file that verifies the server's certificate.
	CAFile string
	// AdminToken is a token of the system:masters group.
	AdminToken string
	// Dir is the server's temporary directory.
	Dir string
	// Tokens maps the users created with a token to it.
	Tokens map[string]string

	procs []*exec.Cmd
}

func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Start starts etcd and the API server. users are extra users, each given a
// token (Server.Tokens) and no permissions until a test grants them.
func Start(t testing.TB, users ...string) *Server {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		unavailable(t, "kube-apiserver not available: run testenv/kube/build.sh and set "+EnvBinary)
		return nil
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		unavailable(t, "etcd not available: apt-get install etcd-server")
		return nil
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, Tokens: map[string]string{}}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			for _, name := range []string{"etcd.log", "apiserver.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s:\n%s", name, b)
			}
		}
	})

	clientPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	s.start(t, "etcd.log", etcdBin,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync",
	)

	saKey := filepath.Join(dir, "sa.key")
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	writeFile(t, saKey+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))

	s.AdminToken = "admin-" + randomHex(16)
	var tokens strings.Builder
	fmt.Fprintf(&tokens, "%s,admin,1,\"system:masters\"\n", s.AdminToken)
	for i, u := range users {
		tok := u + "-" + randomHex(16)
		s.Tokens[u] = tok
		fmt.Fprintf(&tokens, "%s,%s,%d\n", tok, u, i+2)
	}
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(tokens.String()))
	certDir := filepath.Join(dir, "certs")
	s.start(t, "apiserver.log", bin,
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", clientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+certDir,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file="+saKey+".pub",
		"--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins=ServiceAccount",
	)
	s.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	s.CAFile = filepath.Join(certDir, "apiserver.crt")

	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(s.CAFile); err == nil {
			if code, body, err := s.Do("GET", "/readyz", s.AdminToken, nil); err == nil && code == 200 && strings.TrimSpace(string(body)) == "ok" {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver not ready after 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) start(t testing.TB, logName, bin string, args ...string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(s.Dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH"), "ETCD_UNSUPPORTED_ARCH=" + os.Getenv("ETCD_UNSUPPORTED_ARCH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	s.procs = append(s.procs, cmd)
}

// Stop kills the servers; calling it twice is fine.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		_ = syscall.Kill(-s.procs[i].Process.Pid, syscall.SIGKILL)
		_ = s.procs[i].Wait()
	}
	s.procs = nil
}

// Client returns an HTTP client that trusts the server.
func (s *Server) Client() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(s.CAFile); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// Do sends a request with token and an optional JSON body, returning the
// status and body.
func (s *Server) Do(method, path, token string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// MustDo is Do as the admin, failing the test unless the status is 2xx.
func (s *Server) MustDo(t testing.TB, method, path string, body any) []byte {
	t.Helper()
	code, b, err := s.Do(method, path, s.AdminToken, body)
	if err != nil || code >= 300 {
		t.Fatalf("%s %s: %d %v: %s", method, path, code, err, b)
	}
	return b
}

// Namespace creates a namespace.
func (s *Server) Namespace(t testing.TB, name string) {
	t.Helper()
	s.MustDo(t, "POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}})
}

// Grant gives user a Role in namespace with the given rules, such as
// {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["app"]}.
func (s *Server) Grant(t testing.TB, namespace, user string, rules ...map[string]any) {
	t.Helper()
	name := user + "-" + randomHex(4)
	s.MustDo(t, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/"+namespace+"/roles", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
		"metadata": map[string]any{"name": name}, "rules": rules})
	s.MustDo(t, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/"+namespace+"/rolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
		"metadata": map[string]any{"name": name},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
		"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}}})
	// RBAC changes reach the authorizer's cache within moments.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := s.Do("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", s.AdminToken, map[string]any{
			"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
			"spec": map[string]any{"user": user, "resourceAttributes": map[string]any{"namespace": namespace, "verb": "get", "resource": "roles", "group": "rbac.authorization.k8s.io"}}})
		if code == 201 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kubeconfig writes a kubeconfig for user (a name given to Start) and
// returns its path.
func (s *Server) Kubeconfig(t testing.TB, user string) string {
	t.Helper()
	tok := s.Tokens[user]
	if user == "admin" {
		tok = s.AdminToken
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: %s
`, s.URL, s.CAFile, user, tok, user)))
	return path
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
