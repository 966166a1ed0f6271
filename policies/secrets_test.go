package policies

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// TestSecretLiteralsNeverShown plants canary secrets in every way the
// scanner knows and checks that each is refused and that no rendering of
// the diagnostics, text or JSON, contains any of them.
func TestSecretLiteralsNeverShown(t *testing.T) {
	t.Parallel()
	canaries := []string{
		"AKIAZZCANARYCANARY01",
		"correct-horse-canary-staple",
		"hvs.CANARYcanaryCANARYcanary1234",
		"ghp_CANARYcanaryCANARYcanaryCANARYcanary12",
		"MIIBOgIBAAJBAKj34GkxCANARY",
		"s3cr3t-canary-api-key",
		"canary-client-secret",
		"canary-env-map-token",
		"Bearer canary-header",
	}
	src := `
testconn "main" {
  address  = "https://vault.internal"
  password = "correct-horse-canary-staple"
}

policy "canary" {
  every = "30d"

  provider "test" {
    name   = "p"
    secret = "hvs.CANARYcanaryCANARYcanary1234"
    tags = {
      a = "AKIAZZCANARYCANARY01"
      b = "Authorization: token ghp_CANARYcanaryCANARYcanaryCANARYcanary12"
      c = <<EOT
-----BEGIN PRIVATE KEY-----
MIIBOgIBAAJBAKj34GkxCANARY
-----END PRIVATE KEY-----
EOT
    }
  }
  sink "test" { path = "/p" }
  probe "test" {}
}
`
	src2 := `
testconn "other" {
  address = "https://x"
  api_key = 12345
}
testconn "third" {
  address = "https://x"
  client_secret = upper("canary-client-secret")
}
testconn "fourth" {
  address = "https://x"
  x_api_key = "s3cr3t-canary-api-key"
}
testconn "fifth" {
  address = "https://x"
  env = { PATH = "/usr/bin", SERVICE_API_TOKEN = "canary-env-map-token" }
  headers = { "Authorization" = "Bearer canary-header" }
}
`
	l := NewLoader()
	cfg, diags := l.LoadSources(map[string][]byte{"a.hcl": []byte(src), "b.hcl": []byte(src2)})
	if cfg != nil || !diags.HasErrors() {
		t.Fatal("secrets were accepted")
	}
	n := 0
	for _, d := range diags {
		if d.Summary == "Secret value in policy file" {
			n++
			if !strings.Contains(d.Detail, `Secret values must not be written in policy files; use token_file = "..." or env("...")`) {
				t.Errorf("detail %q lacks the advice", d.Detail)
			}
		}
	}
	if n != 8 { // one per attribute: tags holds three
		t.Errorf("%d secret diagnostics, want 8:\n%s", n, render(t, l.Files(), diags))
	}
	text := render(t, l.Files(), diags)
	js, err := DiagnosticsJSON(l.Files(), diags)
	if err != nil {
		t.Fatal(err)
	}
	le := NewLoadError(l.Files(), diags)
	problems, _ := json.Marshal(le.Problems)
	for _, c := range append(canaries, "12345") {
		for what, out := range map[string]string{"text": text, "JSON": string(js), "Error()": diags.Error(), "LoadError": le.Error(), "LoadError problems (the reload log)": string(problems)} {
			if strings.Contains(out, c) {
				t.Errorf("the %s rendering contains the secret %q:\n%s", what, c, out)
			}
		}
	}
	if !strings.Contains(text, `password = "***************************"`) {
		t.Errorf("the snippet should show the masked literal:\n%s", text)
	}
}

func TestSecretScanAllows(t *testing.T) {
	t.Parallel()
	src := `
testconn "main" {
  password      = env("DB_PASSWORD")
  token_file    = "/etc/rekey/token"
  secret_id_env = "VAULT_SECRET_ID"
  api_key       = file("api-key")
  token         = ""
  secret        = trimspace(file("x"))
}
policy "p" {
  sink "test" {
    secret_id = "payments/aws"
    fields    = { AWS_SECRET_ACCESS_KEY = "secret_access_key", password = "password" }
  }
  provider "x" {
    tokens_issued = 3
    note          = "AKIA is the prefix of access key ids; hvs. of Vault tokens"
    arn           = "arn:aws:iam::123456789012:user/svc-payments"
    host          = "hosts.example.internal.corp.abcdefghijklmnopqrstuvwxyz"
    env           = { PATH = "/usr/bin", API_TOKEN = env("API_TOKEN"), "db-password" = file("pw") }
    headers       = { Authorization = env("AUTH_HEADER"), X-Api-Key = "{{ .Key.api_key }}" }
    password      = "{{ .Fields.password }}"
    cron          = "@every 720h"
  }
}
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "ok.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got, mask := scanSecrets(f.Body.(*hclsyntax.Body))
	if len(got) != 0 || len(mask) != 0 {
		t.Errorf("false positives: %v", got)
	}
}

func TestSensitiveDefaults(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"password": true, "db_password": true, "secret": true, "client_secret": true, "token": true,
		"vault_token": true, "secret_id": true, "secret_access_key": true, "api_key": true, "x_api_key": true,
		"private_key": true, "PASSWORD": true, "dsn": true,
		"password_file": false, "token_env": false, "secret_id_file": false, "name": false, "tokens": false,
		"key": false, "path": false, "password_field": false,
	} {
		if got := sensitive("provider", "undeclared", name); got != want {
			t.Errorf("sensitive(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestSecretsFollowDeclarations: the secret-literal check reads what a kind
// declares (plugin.Declare, in kinds_test.go for the test kinds): a
// declared Sensitive attribute with an unremarkable name is refused, a
// NotSensitive one with a secret-looking name is not, and a kind that
// declares nothing gets the defaults.
func TestSecretsFollowDeclarations(t *testing.T) {
	t.Parallel()
	src := `
testconn "c" {
  connect_string = "host=db user=app pass=hunter2"
}
policy "p" {
  provider "test" {
    connect_string = "host=db user=app pass=hunter2"
  }
  sink "test" {
    secret_id = "payments/db"
  }
  probe "test" {
    secret_id = "payments/db"
  }
}
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "decl.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got, _ := scanSecrets(f.Body.(*hclsyntax.Body))
	var lines []int
	for _, d := range got {
		lines = append(lines, d.Subject.Start.Line)
	}
	// testconn and the test provider declare connect_string Sensitive; the
	// test sink declares secret_id NotSensitive; the test probe declares
	// nothing, so secret_id is sensitive by default.
	if want := []int{3, 7, 13}; fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("secret diagnostics on lines %v, want %v: %v", lines, want, got)
	}
}

func TestMatchSecret(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]string{
		"AKIAIOSFODNN7EXAMPLE":                                 "an AWS access key id",
		"ASIAIOSFODNN7EXAMPLE":                                 "an AWS access key id",
		"-----BEGIN OPENSSH PRIVATE KEY-----":                  "a PEM private key",
		"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE":             "a PEM private key",
		"hvs.CAESIJ2kVEwNtWZbq0n3ExampleTok":                   "a Vault token",
		"hvb.AAAAAQJmX0uwhr8rUP8M4vmnqkSLjsXB":                 "a Vault token",
		"s.Jx7E2IW0lEjYgmcXhGsUJTAa":                           "a Vault token",
		"ghp_16C7e42F292c6912E7710c838347Ae178B4a":             "a GitHub token",
		"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstu": "a GitHub token",
		"xoxb-123456789012-abcdefABCDEF":                       "a Slack token",
		"https://payments.internal/healthz":                    "",
		"arn:aws:iam::123456789012:user/svc-payments":          "",
		"vaults.abcdefghijklmnopqrstuvwxyz":                    "",
		"-----BEGIN CERTIFICATE-----":                          "",
	} {
		got, _ := matchSecret(s)
		if got != want {
			t.Errorf("matchSecret(%q) = %q, want %q", s, got, want)
		}
	}
}
