package vaulttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
)

// Body parses src as the body of an HCL block.
func Body(t testing.TB, src string) hcl.Body {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing test HCL: %s", diags.Error())
	}
	return f.Body
}

// Env returns a plugin.Env for a policy named "test" with the given
// connections (nil for none).
func Env(t testing.TB, conns *plugin.Connections) *plugin.Env {
	t.Helper()
	return &plugin.Env{Policy: "test", BaseDir: t.TempDir(), Connections: conns}
}

// WriteFile writes content to a new file in a temporary directory and
// returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Connection declares `vault "main" { address = <server> ... }` with the
// given extra body (an auth block, ...), closes it when the test ends, and
// returns it with the connection set that holds it. Without an auth block
// in extra, the connection reads the root token from a token file.
func (s *Server) Connection(t testing.TB, extra string) (*vault.Conn, *plugin.Connections) {
	t.Helper()
	return s.ConnectionVia(t, s.Addr, extra)
}

// ConnectionVia is Connection with another address, such as a proxy in
// front of the server.
func (s *Server) ConnectionVia(t testing.TB, addr, extra string) (*vault.Conn, *plugin.Connections) {
	t.Helper()
	if !strings.Contains(extra, "auth ") {
		extra += "\nauth \"token_file\" {\n  path = \"" + WriteFile(t, "root-token", s.RootToken+"\n") + "\"\n}\n"
	}
	src := "address = \"" + addr + "\"\n" + extra
	env := Env(t, nil)
	c, diags := vault.New(env, "main", Body(t, src))
	if diags.HasErrors() {
		t.Fatalf("vault connection: %s", diags.Error())
	}
	conn := c.(*vault.Conn)
	t.Cleanup(func() { _ = conn.Close() })
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	return conn, conns
}

// LogBuffer is a goroutine-safe buffer that collects log output.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a context carrying a debug-level zerolog logger that
// writes into the returned buffer.
func Logger(t testing.TB) (context.Context, *LogBuffer) {
	t.Helper()
	buf := &LogBuffer{}
	l := zerolog.New(buf).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	return l.WithContext(context.Background()), buf
}

// AssertNoLeak fails the test if any secret appears in any of the texts
// (log output, error strings, ...).
func AssertNoLeak(t testing.TB, texts []string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for i, txt := range texts {
			if strings.Contains(txt, sec) {
				t.Errorf("secret %s leaked into text %d: %q", maskForTest(sec), i, strings.ReplaceAll(txt, sec, "<LEAKED>"))
			}
		}
	}
}

func maskForTest(s string) string {
	if len(s) <= 6 {
		return "***"
	}
	return s[:3] + "***"
}

// ErrText returns err's message, or "" for nil.
func ErrText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
