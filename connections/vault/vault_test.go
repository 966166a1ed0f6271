package vault_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

const kvPolicy = `
path "kv/data/*" { capabilities = ["create", "read", "update"] }
path "kv/metadata/*" { capabilities = ["read"] }
`

// readKV reads kv/data/probe through the connection.
func readKV(ctx context.Context, c *vault.Conn) error {
	return c.Do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().ReadWithContext(ctx, "kv/data/probe")
		return err
	})
}

type appRole struct {
	roleID, secretID string
	roleIDFile       string
	secretIDFile     string
}

// setupAppRole enables AppRole with a role "rekey" that may use kv, with
// the given token TTLs, and writes its role id and a secret id to files.
func setupAppRole(t *testing.T, srv *vaulttest.Server, ttl, maxTTL string) appRole {
	t.Helper()
	srv.EnableKV(t, "kv", 2)
	srv.WritePolicy(t, "kv", kvPolicy)
	srv.EnableAppRole(t, "approle")
	var ar appRole
	ar.roleID = srv.CreateRole(t, "approle", "rekey", map[string]any{"token_policies": "kv", "token_ttl": ttl, "token_max_ttl": maxTTL})
	ar.secretID, _ = srv.NewSecretID(t, "approle", "rekey")
	ar.roleIDFile = vaulttest.WriteFile(t, "role-id", ar.roleID+"\n")
	ar.secretIDFile = vaulttest.WriteFile(t, "secret-id", ar.secretID+"\n")
	return ar
}

func (ar appRole) block(extra string) string {
	return "auth \"approle\" {\n  role_id_file = \"" + ar.roleIDFile + "\"\n  secret_id_file = \"" + ar.secretIDFile + "\"\n" + extra + "}\n"
}

// waitTokenGone polls (through the root token) until tok no longer exists.
func waitTokenGone(t *testing.T, srv *vaulttest.Server, tok string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := srv.Client.Auth().Token().Lookup(tok)
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the token did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func currentToken(t *testing.T, c *vault.Conn) string {
	t.Helper()
	cl, err := c.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cl.Token()
}

func TestAppRoleLoginIsLazyAndRenewedAfterExpiry(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ar := setupAppRole(t, srv, "2s", "3s")
	conn, _ := srv.Connection(t, ar.block(""))
	ctx, logs := vaulttest.Logger(t)
	var errs []string
	if n := conn.Logins(); n != 0 {
		t.Fatalf("logged in %d times before first use", n)
	}
	if err := readKV(ctx, conn); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if n := conn.Logins(); n != 1 {
		t.Fatalf("logins after first use = %d", n)
	}
	tok := currentToken(t, conn)
	waitTokenGone(t, srv, tok)

	err := readKV(ctx, conn)
	errs = append(errs, vaulttest.ErrText(err))
	if err != nil {
		t.Fatalf("request after the token expired: %v", err)
	}
	if n := conn.Logins(); n != 2 {
		t.Fatalf("logins = %d, want 2 (one re-login after the 403)", n)
	}
	if !strings.Contains(logs.String(), "403") {
		t.Error("the re-login after 403 was not logged")
	}
	vaulttest.AssertNoLeak(t, append(errs, logs.String()), srv.RootToken, ar.secretID, ar.roleID, tok, currentToken(t, conn))
}

func TestRenewalLogsInAgainAtMaxTTL(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ar := setupAppRole(t, srv, "2s", "4s")
	conn, _ := srv.Connection(t, ar.block(""))
	ctx, logs := vaulttest.Logger(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := conn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := readKV(ctx, conn); err != nil {
		t.Fatal(err)
	}
	first := currentToken(t, conn)
	deadline := time.Now().Add(30 * time.Second)
	for conn.Logins() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no new login after the token's max TTL; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := currentToken(t, conn)
	if second == first {
		t.Fatal("the token did not change")
	}
	if strings.Contains(logs.String(), "403") {
		t.Error("a request was refused: the renewal did not replace the token in time")
	}
	if err := readKV(ctx, conn); err != nil {
		t.Fatalf("request with the renewed login: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	// Close revoked the token it obtained.
	if _, err := srv.Client.Auth().Token().Lookup(second); err == nil {
		t.Error("Close did not revoke the connection's token")
	}
	if err := readKV(ctx, conn); err == nil || !plugin.IsPermanent(err) {
		t.Errorf("request on a closed connection = %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String()}, srv.RootToken, ar.secretID, ar.roleID, first, second)
}

func TestTokenFileIsReadAgainWhenItChanges(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	srv.EnableKV(t, "kv", 2)
	srv.WritePolicy(t, "kv", kvPolicy)
	newToken := func() string {
		sec, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"kv"}})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	a, b := newToken(), newToken()
	file := vaulttest.WriteFile(t, "token", a)
	conn, _ := srv.Connection(t, "auth \"token_file\" {\n path = \""+file+"\"\n}\n")
	ctx, logs := vaulttest.Logger(t)
	if err := readKV(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// Vault Agent writes a new token, then the old one is revoked.
	if err := os.WriteFile(file, []byte(b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.Auth().Token().RevokeOrphan(a); err != nil {
		t.Fatal(err)
	}
	if err := readKV(ctx, conn); err != nil {
		t.Fatalf("request after the file changed: %v", err)
	}
	if strings.Contains(logs.String(), "403") {
		t.Error("the changed file was not read before the request")
	}
	// A revoked token whose file does not change: one re-read, then a
	// permanent error.
	if err := srv.Client.Auth().Token().RevokeOrphan(b); err != nil {
		t.Fatal(err)
	}
	err := readKV(ctx, conn)
	if err == nil || !plugin.IsPermanent(err) || !vault.IsStatus(err, 403) {
		t.Fatalf("request with a revoked token = %v, want a permanent 403", err)
	}
	if strings.Count(logs.String(), "403") != 1 {
		t.Errorf("want exactly one re-auth attempt; log:\n%s", logs.String())
	}
	vaulttest.AssertNoLeak(t, []string{logs.String(), err.Error()}, srv.RootToken, a, b)
}

func TestWrappedSecretIDIsUnwrappedOnceAndFileRemoved(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ar := setupAppRole(t, srv, "1h", "2h")
	wc, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	wc.SetToken(srv.RootToken)
	wc.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	sec, err := wc.Logical().Write("auth/approle/role/rekey/secret-id", nil)
	if err != nil || sec.WrapInfo == nil {
		t.Fatalf("wrapping a secret id: %v", err)
	}
	wrapping := sec.WrapInfo.Token
	if err := os.WriteFile(ar.secretIDFile, []byte(wrapping), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, _ := srv.Connection(t, ar.block("secret_id_wrapped = true\nremove_secret_id_file = true\n"))
	ctx, logs := vaulttest.Logger(t)
	if err := readKV(ctx, conn); err != nil {
		t.Fatalf("request: %v", err)
	}
	if _, err := os.Stat(ar.secretIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the secret id file was not removed: %v", err)
	}
	// The token is revoked behind the connection's back: it logs in again
	// with the secret id it kept in memory.
	tok := currentToken(t, conn)
	if err := srv.Client.Auth().Token().RevokeOrphan(tok); err != nil {
		t.Fatal(err)
	}
	if err := readKV(ctx, conn); err != nil {
		t.Fatalf("request after revocation: %v", err)
	}
	if n := conn.Logins(); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String()}, srv.RootToken, wrapping, ar.secretID, tok, currentToken(t, conn))
}

func TestWrappedSecretIDFromElsewhereIsRefused(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ar := setupAppRole(t, srv, "1h", "2h")
	wc, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	wc.SetToken(srv.RootToken)
	wc.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	sec, err := wc.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": "attacker-chosen"})
	if err != nil || sec.WrapInfo == nil {
		t.Fatalf("wrapping: %v", err)
	}
	if err := os.WriteFile(ar.secretIDFile, []byte(sec.WrapInfo.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, _ := srv.Connection(t, ar.block("secret_id_wrapped = true\n"))
	err = readKV(context.Background(), conn)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("login with a wrapping token from sys/wrapping/wrap = %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error()}, sec.WrapInfo.Token, srv.RootToken)
}

func TestInvalidSecretIDIsPermanentAndQuiet(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	ar := setupAppRole(t, srv, "1h", "2h")
	bogus := "00000000-1111-2222-3333-444444444444"
	if err := os.WriteFile(ar.secretIDFile, []byte(bogus), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, _ := srv.Connection(t, ar.block(""))
	ctx, logs := vaulttest.Logger(t)
	err := readKV(ctx, conn)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "auth/approle") {
		t.Fatalf("login with a wrong secret id = %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error(), logs.String()}, bogus, ar.roleID, ar.secretID, srv.RootToken)
}

func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t, vaulttest.TLS())
	srv.EnableKV(t, "kv", 2)
	conn, _ := srv.Connection(t, "ca_file = \""+srv.CACert+"\"\n")
	if err := readKV(context.Background(), conn); err != nil {
		t.Fatalf("request over TLS with ca_file: %v", err)
	}
	untrusted, _ := srv.Connection(t, "")
	err := readKV(context.Background(), untrusted)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("request over TLS without the CA = %v, want a permanent error advising ca_file", err)
	}
	insecure, _ := srv.Connection(t, "tls_skip_verify_insecure = true\n")
	if err := readKV(context.Background(), insecure); err != nil {
		t.Fatalf("request with tls_skip_verify_insecure: %v", err)
	}
}

func TestUnreachableVaultIsRetriedUntilTheDeadline(t *testing.T) {
	t.Parallel()
	srv := &vaulttest.Server{Addr: "http://127.0.0.1:1", RootToken: "unused"}
	conn, _ := srv.Connection(t, "")
	ctx, logs := vaulttest.Logger(t)
	ctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	defer cancel()
	err := readKV(ctx, conn)
	if err == nil || plugin.IsPermanent(err) || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("request to a closed port = %v, want a retryable error after retries", err)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Error("no retry logged")
	}
}

// TestEnvToken cannot run in parallel: it sets VAULT_TOKEN.
func TestEnvToken(t *testing.T) {
	srv := vaulttest.Start(t)
	srv.EnableKV(t, "kv", 2)
	env := vaulttest.Env(t, nil)
	c, diags := vault.New(env, "main", vaulttest.Body(t, "address = \""+srv.Addr+"\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	conn := c.(*vault.Conn)
	defer conn.Close()
	t.Setenv("VAULT_TOKEN", "")
	err := readKV(context.Background(), conn)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("request without any token = %v", err)
	}
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	if err := readKV(context.Background(), conn); err != nil {
		t.Fatalf("request with VAULT_TOKEN: %v", err)
	}
}

func TestFactoryDiagnostics(t *testing.T) {
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_NAMESPACE", "")
	for _, tc := range []struct {
		name, body string
		severity   hcl.DiagnosticSeverity
		want       string
		line       int
	}{
		{"missing address", ``, hcl.DiagError, "Missing Vault address", 0},
		{"bad address", `address = "vault:8200"`, hcl.DiagError, "Invalid Vault address", 1},
		{"skip verify warns", "address = \"https://v:8200\"\n\ntls_skip_verify_insecure = true", hcl.DiagWarning, "TLS verification disabled", 3},
		{"plain http to another host warns", `address = "http://vault.internal:8200"`, hcl.DiagWarning, "without TLS", 1},
		{"cert without key", "address = \"https://v:8200\"\nclient_cert_file = \"c.pem\"", hcl.DiagError, "client_key_file", 2},
		{"bad timeout", "address = \"https://v:8200\"\nrequest_timeout = \"soon\"", hcl.DiagError, "Invalid request_timeout", 2},
		{"two auth blocks", "address = \"https://v:8200\"\nauth \"token_file\" {\n path = \"t\"\n}\nauth \"token_file\" {\n path = \"u\"\n}", hcl.DiagError, "Duplicate auth block", 5},
		{"unknown auth method", "address = \"https://v:8200\"\nauth \"kubernetes\" {}", hcl.DiagError, "Unsupported auth method", 2},
		{"unknown approle option", "address = \"https://v:8200\"\nauth \"approle\" {\n role_id_file = \"r\"\n secret_id_fille = \"s\"\n}", hcl.DiagError, "Unsupported argument", 4},
		{"wrapped without file", "address = \"https://v:8200\"\nauth \"approle\" {\n role_id_file = \"r\"\n secret_id_wrapped = true\n}", hcl.DiagError, "secret_id_wrapped without secret_id_file", 4},
	} {
		env := vaulttest.Env(t, nil)
		env.DefRange = hcl.Range{Filename: "test.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}
		_, diags := vault.New(env, "main", vaulttest.Body(t, tc.body))
		var found *hcl.Diagnostic
		for _, d := range diags {
			if d.Severity == tc.severity && strings.Contains(d.Summary+" "+d.Detail, tc.want) {
				found = d
			}
		}
		if found == nil {
			t.Errorf("%s: diagnostics %v, want a %v with %q", tc.name, diags, tc.severity, tc.want)
			continue
		}
		if found.Subject == nil || (tc.line > 0 && found.Subject.Start.Line != tc.line) {
			t.Errorf("%s: diagnostic at %v, want line %d", tc.name, found.Subject, tc.line)
		}
	}
}

func TestFactoryDoesNoIO(t *testing.T) {
	t.Parallel()
	env := vaulttest.Env(t, nil)
	body := "address = \"https://127.0.0.1:1\"\nca_file = \"missing-ca.pem\"\nauth \"approle\" {\n role_id_file = \"missing\"\n secret_id_file = \"missing\"\n}\n"
	c, diags := vault.New(env, "main", vaulttest.Body(t, body))
	if diags.HasErrors() {
		t.Fatalf("factory touched files or network: %s", diags.Error())
	}
	if c.(*vault.Conn).Logins() != 0 {
		t.Fatal("logged in from the factory")
	}
	_ = c.(*vault.Conn).Close()
}
