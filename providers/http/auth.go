package http

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
)

// TokenSource supplies the admin credential at each operation, so that a
// credential renewed outside rekey is picked up without a reload. It is
// never written in a policy file.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	// Describe says where the credential comes from, for messages.
	Describe() string
}

// FileToken reads the credential from a file (one trailing newline and
// surrounding white space removed). The file may be another policy's file
// sink.
type FileToken struct{ Path string }

// Token implements TokenSource.
func (f FileToken) Token(context.Context) (string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", plugin.Permanent(fmt.Errorf("reading the admin credential: %w", err))
	}
	t := strings.TrimSpace(string(b))
	clear(b)
	if t == "" {
		return "", plugin.Permanent(fmt.Errorf("the admin credential file %s is empty", f.Path))
	}
	return t, nil
}

// Describe implements TokenSource.
func (f FileToken) Describe() string { return "token_file " + f.Path }

// EnvToken reads the credential from an environment variable of the
// daemon.
type EnvToken struct{ Name string }

// Token implements TokenSource.
func (e EnvToken) Token(context.Context) (string, error) {
	t := strings.TrimSpace(os.Getenv(e.Name))
	if t == "" {
		return "", plugin.Permanent(fmt.Errorf("the environment variable %s, which should hold the admin credential, is unset or empty", e.Name))
	}
	return t, nil
}

// Describe implements TokenSource.
func (e EnvToken) Describe() string { return "token_env " + e.Name }

// VaultToken reads the credential from a field of a Vault secret (KV
// version 1 or 2, or any path that answers a read), through a vault
// connection. It may be another policy's vault_kv sink.
type VaultToken struct {
	Conn  *vault.Conn
	Path  string
	Field string
}

// Token implements TokenSource.
func (v VaultToken) Token(ctx context.Context) (string, error) {
	var sec *api.Secret
	err := v.Conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().ReadWithContext(ctx, v.Path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading the admin credential from %s: %w", v.Describe(), err)
	}
	if sec == nil || sec.Data == nil {
		return "", plugin.Permanent(fmt.Errorf("reading the admin credential: %s does not exist", v.Describe()))
	}
	data := sec.Data
	if inner, ok := data["data"].(map[string]any); ok {
		if _, kv2 := data["metadata"]; kv2 {
			data = inner
		}
	}
	s, _ := data[v.Field].(string)
	if s == "" {
		return "", plugin.Permanent(fmt.Errorf("reading the admin credential: %s has no non-empty string field %q", v.Describe(), v.Field))
	}
	return s, nil
}

// Describe implements TokenSource.
func (v VaultToken) Describe() string {
	return fmt.Sprintf("vault connection %q, path %s", v.Conn.Name(), v.Path)
}

// AuthBlock is the `auth { ... }` block shared by the http and kong
// providers: exactly one source of the admin credential.
type AuthBlock struct {
	TokenFile *string     `hcl:"token_file,optional"`
	TokenEnv  *string     `hcl:"token_env,optional"`
	Vault     *VaultBlock `hcl:"vault,block"`
	DefRange  hcl.Range   `hcl:",def_range"`
}

// VaultBlock names a field of a Vault secret.
type VaultBlock struct {
	Connection hcl.Expression `hcl:"connection"`
	Path       string         `hcl:"path"`
	Field      string         `hcl:"field"`
	PathRange  hcl.Range      `hcl:"path,attr_range"`
	FieldRange hcl.Range      `hcl:"field,attr_range"`
}

// DecodeAuth turns an auth block into a TokenSource.
func DecodeAuth(env *plugin.Env, b *AuthBlock) (TokenSource, hcl.Diagnostics) {
	if b == nil {
		return nil, nil
	}
	var diags hcl.Diagnostics
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}
	n := 0
	for _, set := range []bool{b.TokenFile != nil, b.TokenEnv != nil, b.Vault != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		errAt(b.DefRange, "One admin credential source", "The auth block takes exactly one of token_file, token_env and a vault block.")
		return nil, diags
	}
	switch {
	case b.TokenFile != nil:
		if *b.TokenFile == "" {
			errAt(b.DefRange, "Empty token_file", "token_file names a file readable only by rekey's user that holds the admin credential.")
			return nil, diags
		}
		return FileToken{Path: env.Path(*b.TokenFile)}, nil
	case b.TokenEnv != nil:
		if *b.TokenEnv == "" {
			errAt(b.DefRange, "Empty token_env", "token_env names an environment variable of the daemon that holds the admin credential.")
			return nil, diags
		}
		return EnvToken{Name: *b.TokenEnv}, nil
	}
	c, cdiags := env.Connection(b.Vault.Connection, vault.Kind)
	diags = append(diags, cdiags...)
	if b.Vault.Path == "" {
		errAt(b.Vault.PathRange, "Empty path", "path is the Vault API path of the secret, such as \"secret/data/kong-admin\" for KV version 2.")
	}
	if b.Vault.Field == "" {
		errAt(b.Vault.FieldRange, "Empty field", "field names the field of the secret that holds the admin credential, such as \"token\".")
	}
	if diags.HasErrors() {
		return nil, diags
	}
	conn, ok := c.(*vault.Conn)
	if !ok {
		errAt(b.Vault.Connection.Range(), "Invalid connection", "connection must name a vault connection.")
		return nil, diags
	}
	return VaultToken{Conn: conn, Path: strings.Trim(b.Vault.Path, "/"), Field: b.Vault.Field}, nil
}
