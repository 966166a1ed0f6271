package plugin

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestDefaultRole(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]AttrRole{
		"password": Sensitive, "db_password": Sensitive, "token": Sensitive, "secret_id": Sensitive, "dsn": Sensitive,
		"api_key": Sensitive, "Authorization": Sensitive,
		"token_file": File | SecretFile, "secret_id_file": File | SecretFile, "role_id_file": File | SecretFile,
		"dsn_file": File | SecretFile, "password_file": File | SecretFile, "signing_key_file": File | SecretFile,
		"key_file": File | SecretFile, "client_key_file": File | SecretFile, "credentials_file": File | SecretFile,
		"ca_file": File, "client_cert_file": File, "cert_file": File, "template_file": File,
		"command": Command, "create_command": Command,
		"token_env": 0, "command_env": 0, "password_field": 0, "path": 0, "name": 0, "tokens": 0,
	} {
		if got := DefaultRole(name); got != want {
			t.Errorf("DefaultRole(%q) = %b, want %b", name, got, want)
		}
	}
}

func TestDeclare(t *testing.T) {
	t.Parallel()
	Declare("provider", "declare_test", Attrs{"conn": Sensitive, "secret_name": NotSensitive, "query": 0, "dsn_path": SecretFile})
	Declare("provider", "declare_test", Attrs{"run": Command})
	for name, want := range map[string]AttrRole{
		"conn": Sensitive, "secret_name": NotSensitive, "query": 0, "dsn_path": SecretFile | File, "run": Command,
		"token_file": File | SecretFile, "command": Command,
	} {
		if got := Role("provider", "declare_test", name); got != want {
			t.Errorf("Role(%q) = %b, want %b", name, got, want)
		}
	}
	if got := Role("sink", "declare_test", "conn"); got != 0 {
		t.Errorf("a declaration leaked to another block type: %b", got)
	}
}

func TestArticle(t *testing.T) {
	t.Parallel()
	for word, want := range map[string]string{"aws": "an aws", "vault": "a vault", "http": "an http", "exec": "an exec", "random": "a random", "user": "a user", "ssh": "an ssh"} {
		if got := Article(word, false); got != want {
			t.Errorf("Article(%q) = %q, want %q", word, got, want)
		}
	}
	if got := Article("aws", true); got != "An aws" {
		t.Errorf("capitalised: %q", got)
	}
}

func TestConnectionDiagnostics(t *testing.T) {
	t.Parallel()
	conns := NewConnections()
	conns.Add("aws", "prod", "p")
	conns.Add("aws", "staging", "s")
	env := &Env{Connections: conns}
	for src, want := range map[string]string{
		`"aws.prod"`: "remove the quotes and write aws.prod.",
		`aws.prd`:    `No aws connection "prd" is declared. Did you mean aws.prod? Declared aws connections: prod, staging.`,
		`vault.main`: "Expected a reference to an aws connection, such as aws.main",
		`aws.prod`:   "",
	} {
		expr, diags := hclsyntax.ParseExpression([]byte(src), "x.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		c, diags := env.Connection(expr, "aws")
		switch {
		case want == "" && (diags.HasErrors() || c != "p"):
			t.Errorf("%s: %v %v", src, c, diags)
		case want != "" && (len(diags) != 1 || !strings.Contains(diags[0].Detail, want)):
			t.Errorf("%s: got %v, want %q", src, diags, want)
		}
	}
}
