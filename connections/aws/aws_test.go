package aws_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

func decode(t *testing.T, src string) (*awsconn.Conn, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "rekey.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	factory, ok := plugin.ConnectionKinds.Lookup("aws")
	if !ok {
		t.Fatal("the aws connection kind is not registered")
	}
	v, diags := factory(&plugin.Env{DefRange: hcl.Range{Filename: "rekey.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}, "prod", f.Body)
	c, _ := v.(*awsconn.Conn)
	if !diags.HasErrors() && c == nil {
		t.Fatalf("factory returned %T", v)
	}
	return c, diags
}

func TestFactory(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	c, diags := decode(t, `
region                  = "eu-central-1"
profile                 = "does-not-exist"
endpoint                = "https://vpce.example.internal"
secretsmanager_endpoint = "https://sm.example.internal"
max_attempts            = 3
assume_role {
  role_arn    = "arn:aws:iam::123456789012:role/rekey"
  external_id = "x"
  duration    = "1h"
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.Name() != "prod" || c.Region() != "eu-central-1" || c.MaxAttempts() != 3 ||
		c.Endpoint(awsconn.ServiceIAM) != "https://vpce.example.internal" ||
		c.Endpoint(awsconn.ServiceSecretsManager) != "https://sm.example.internal" {
		t.Errorf("decoded %s %s %d %s %s", c.Name(), c.Region(), c.MaxAttempts(), c.Endpoint(awsconn.ServiceIAM), c.Endpoint(awsconn.ServiceSecretsManager))
	}
	// Nothing was loaded: the missing profile shows only on first use.
	_, err := c.Config(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does-not-exist") {
		t.Errorf("Config() with a missing profile = %v", err)
	}

	if c, diags := decode(t, "region = \"us-east-1\"\n"); diags.HasErrors() || c.MaxAttempts() != awsconn.DefaultMaxAttempts {
		t.Errorf("defaults: %v", diags)
	}

	for name, tc := range map[string]struct{ src, want string }{
		"credentials are refused":    {"region = \"us-east-1\"\nsecret_access_key = \"abc\"\n", "rekey.hcl:2,1-18: Credentials do not belong in policy files"},
		"region is required":         {"profile = \"x\"\n", "Missing region"},
		"unknown attribute":          {"region = \"us-east-1\"\nregoin = \"x\"\n", "Unsupported argument"},
		"endpoint must be a URL":     {"region = \"us-east-1\"\niam_endpoint = \"iam.local\"\n", "rekey.hcl:2,1-27: Invalid endpoint"},
		"max_attempts range":         {"region = \"us-east-1\"\nmax_attempts = 0\n", "Invalid max_attempts"},
		"role_arn must be a role":    {"region = \"us-east-1\"\nassume_role {\n role_arn = \"arn:aws:iam::1:user/x\"\n}\n", "rekey.hcl:3,2-36: Invalid role_arn"},
		"duration within AWS limits": {"region = \"us-east-1\"\nassume_role {\n role_arn = \"arn:aws:iam::1:role/x\"\n duration = \"13h\"\n}\n", "Invalid duration"},
		"session name pattern":       {"region = \"us-east-1\"\nassume_role {\n role_arn = \"arn:aws:iam::1:role/x\"\n session_name = \"a b\"\n}\n", "Invalid session_name"},
		"role_arn is required":       {"region = \"us-east-1\"\nassume_role {\n}\n", "Missing required argument"},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := decode(t, tc.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics %q, want one containing %q", diags.Error(), tc.want)
			}
		})
	}

	t.Setenv("AWS_REGION", "ap-south-1")
	if c, diags := decode(t, ""); diags.HasErrors() || c.Region() != "ap-south-1" {
		t.Errorf("region from AWS_REGION: %v", diags)
	}
}

func listKeys(ctx context.Context, c *awsconn.Conn, user string) error {
	client, err := c.IAM(ctx)
	if err != nil {
		return err
	}
	_, err = client.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	return err
}

// TestCredentialChain runs the standard chain for real: a profile in a
// shared credentials file, then the environment.
func TestCredentialChain(t *testing.T) {
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	env.Server.CreateUser("ops")
	adminID, adminSecret := env.Server.AdminKey()
	opsID, opsSecret, err := env.Server.CreateAccessKeyFor("ops")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[rekey]\naws_access_key_id = "+adminID+"\naws_secret_access_key = "+adminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", opsID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", opsSecret)
	ctx := context.Background()

	byProfile, diags := decode(t, "region = \"eu-central-1\"\nprofile = \"rekey\"\nendpoint = \""+env.Server.URL()+"\"\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := listKeys(ctx, byProfile, "svc"); err != nil {
		t.Fatalf("with the profile's (admin) key: %v", err)
	}
	byEnv, diags := decode(t, "region = \"eu-central-1\"\niam_endpoint = \""+env.Server.URL()+"\"\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// The environment's key belongs to ops, which may not manage svc.
	if err := listKeys(ctx, byEnv, "svc"); awsconn.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("with the environment's (ops) key on svc = %v, want AccessDenied", err)
	}
	if err := listKeys(ctx, byEnv, "ops"); err != nil {
		t.Fatalf("with the environment's key on ops: %v", err)
	}
	var users []string
	for _, c := range env.Server.Ledger() {
		if c.Action == "ListAccessKeys" {
			users = append(users, c.User+":"+c.Code)
		}
	}
	if got, want := strings.Join(users, " "), "admin: ops:AccessDenied ops:"; got != want {
		t.Errorf("ListAccessKeys callers = %q, want %q", got, want)
	}
}

// TestAssumeRole checks that assume_role calls sts:AssumeRole at the STS
// endpoint with the chain's credentials before the first IAM call. The
// emulator does not implement AssumeRole, so the call fails there.
func TestAssumeRole(t *testing.T) {
	t.Parallel()
	env := awstest.Start(t, 0)
	id, sec := env.Server.AdminKey()
	c := awsconn.New(awsconn.Options{
		Name: "assumed", Region: awstest.Region, Endpoint: env.Server.URL(), MaxBackoff: time.Millisecond,
		Credentials: credentials.NewStaticCredentialsProvider(id, sec, ""),
		AssumeRole:  &awsconn.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/rekey"},
	})
	err := listKeys(context.Background(), c, "admin")
	if err == nil || !strings.Contains(err.Error(), "AssumeRole") {
		t.Fatalf("IAM call through assume_role = %v, want an AssumeRole failure", err)
	}
	var actions []string
	for _, call := range env.Server.Ledger() {
		actions = append(actions, call.Action+":"+call.User)
	}
	if len(actions) == 0 || actions[0] != "AssumeRole:admin" {
		t.Errorf("calls = %v, want AssumeRole by admin first", actions)
	}
	for _, a := range actions {
		if strings.HasPrefix(a, "ListAccessKeys") {
			t.Errorf("ListAccessKeys was sent without the assumed role: %v", actions)
		}
	}
}

func TestRedactAndClassify(t *testing.T) {
	t.Parallel()
	base := plugin.ErrNotFound
	err := awsconn.Redact(fmt.Errorf("key AKIAABCDEFGHIJKLMNOP secret s3cr3t-value: %w", base), []string{"AKIAABCDEFGHIJKLMNOP"}, []string{"s3cr3t-value"})
	if got := err.Error(); strings.Contains(got, "AKIAABCDEFGHIJKLMNOP") || strings.Contains(got, "s3cr3t") || !strings.Contains(got, "****MNOP") {
		t.Errorf("Redact = %q", got)
	}
	if !errors.Is(err, base) {
		t.Error("Redact lost the error chain")
	}
	if awsconn.Classify(nil) != nil || awsconn.Redact(nil, nil, nil) != nil {
		t.Error("nil in, non-nil out")
	}
}
