package awssts_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/probes/awssts"
	"github.com/rekeyhq/rekey/providers/awsiam"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

func key(id, sec string) plugin.Key {
	return plugin.Key{ID: id, Value: secret.Fields{"access_key_id": secret.New(id), "secret_access_key": secret.New(sec)}}
}

func assertNoLeak(t *testing.T, err error, values ...string) {
	t.Helper()
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, v := range values {
			if strings.Contains(s, v) {
				t.Errorf("error leaks %q: %s", v, s)
			}
		}
	}
}

func stsCalls(env *awstest.Env) []string {
	var out []string
	for _, c := range env.Server.Ledger() {
		if c.Action == "GetCallerIdentity" {
			out = append(out, c.User+":"+c.Code)
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	arn := env.Server.CreateUser("svc")
	id, sec, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		t.Fatal(err)
	}
	// The connection's own credentials are never used: these are bogus.
	conn := awstest.Conn(env.Server, "test", "AKIANOTAREALKEY00000", "bogus-bogus-bogus-bogus-bogus-bogus-0000")
	p := awssts.NewProbe(awssts.Options{Conn: conn, ExpectARN: arn, ExpectAccount: "123456789012"})
	if p.DefaultTarget() != probes.TargetKey {
		t.Errorf("DefaultTarget() = %q", p.DefaultTarget())
	}
	if err := p.Check(ctx, key(id, sec)); err != nil {
		t.Fatalf("Check with a valid key: %v", err)
	}
	if got := stsCalls(env); fmt.Sprint(got) != "[svc:]" {
		t.Errorf("GetCallerIdentity calls = %v, want one by svc", got)
	}

	for name, opts := range map[string]awssts.Options{
		"another user":    {Conn: conn, ExpectARN: "arn:aws:iam::123456789012:user/someone-else"},
		"another account": {Conn: conn, ExpectAccount: "210987654321"},
	} {
		err := awssts.NewProbe(opts).Check(ctx, key(id, sec))
		if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), secret.Mask(id)) {
			t.Errorf("%s: Check = %v, want a permanent mismatch naming the masked key", name, err)
		} else {
			assertNoLeak(t, err, id, sec)
		}
	}

	renamed := plugin.Key{ID: id, Value: secret.Fields{"AWS_ACCESS_KEY_ID": secret.New(id), "AWS_SECRET_ACCESS_KEY": secret.New(sec)}}
	if err := p.Check(ctx, renamed); err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY") {
		t.Errorf("Check of a key without the default fields = %v", err)
	}
	q := awssts.NewProbe(awssts.Options{Conn: conn, AccessKeyIDField: "AWS_ACCESS_KEY_ID", SecretAccessKeyField: "AWS_SECRET_ACCESS_KEY"})
	if err := q.Check(ctx, renamed); err != nil {
		t.Errorf("Check with configured field names: %v", err)
	}
}

func TestDeletedOrWrongKeyFailsRetryably(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	prov := awsiam.NewProvider(env.Conn, "svc", 0)
	k, err := prov.Create(ctx, plugin.Rotation{ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	id, sec := k.Value["access_key_id"].Reveal(), k.Value["secret_access_key"].Reveal()
	p := awssts.NewProbe(awssts.Options{Conn: env.Conn})
	env.Settle() // IAM propagated the new key
	if err := p.Check(ctx, k); err != nil {
		t.Fatal(err)
	}
	err = p.Check(ctx, key(id, "wrong-wrong-wrong-wrong-wrong-wrong-0000"))
	if awsconn.ErrorCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("Check with a wrong secret = %v", err)
	}
	if err := prov.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	env.Settle() // IAM propagated the deletion
	err = p.Check(ctx, k)
	if awsconn.ErrorCode(err) != "InvalidClientTokenId" || plugin.IsPermanent(err) {
		t.Fatalf("Check with a deleted key = %v, want a retryable InvalidClientTokenId", err)
	}
	assertNoLeak(t, err, id, sec)
	if !strings.Contains(err.Error(), secret.Mask(id)) {
		t.Errorf("error %q does not name the masked key", err)
	}
}

func TestEventualConsistency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 10*time.Second)
	env.Server.CreateUser("svc")
	k, err := awsiam.NewProvider(env.Conn, "svc", 0).Create(ctx, plugin.Rotation{ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	p := awssts.NewProbe(awssts.Options{Conn: env.Conn})
	// The emulator draws the delay from [5s, 10s].
	start := env.Clock.Now()
	for _, step := range []time.Duration{0, 2 * time.Second, 2999 * time.Millisecond} {
		env.Clock.Advance(step)
		err := p.Check(ctx, k)
		if awsconn.ErrorCode(err) != "InvalidClientTokenId" || plugin.IsPermanent(err) {
			t.Fatalf("Check %v after creation = %v, want a retryable InvalidClientTokenId", env.Clock.Now().Sub(start), err)
		}
	}
	env.Clock.Advance(start.Add(10 * time.Second).Sub(env.Clock.Now()))
	if err := p.Check(ctx, k); err != nil {
		t.Fatalf("Check once the consistency delay passed: %v", err)
	}
	if got := stsCalls(env); len(got) != 4 {
		t.Errorf("GetCallerIdentity calls = %v, want 4: one attempt per Check", got)
	}
}

func TestOneAttemptPerCheck(t *testing.T) {
	t.Parallel()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	id, sec, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		t.Fatal(err)
	}
	env.Server.Throttle("GetCallerIdentity", 1)
	p := awssts.NewProbe(awssts.Options{Conn: env.Conn})
	if err := p.Check(context.Background(), key(id, sec)); awsconn.ErrorCode(err) != "Throttling" || plugin.IsPermanent(err) {
		t.Fatalf("throttled Check = %v, want a retryable Throttling error", err)
	}
	if err := p.Check(context.Background(), key(id, sec)); err != nil {
		t.Fatalf("second Check: %v", err)
	}
	if got := stsCalls(env); len(got) != 2 {
		t.Errorf("calls = %v, want 2", got)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	env := awstest.Start(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := awssts.NewProbe(awssts.Options{Conn: env.Conn}).Check(ctx, key("AKIAAAAAAAAAAAAAAAAA", "s"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Check with a canceled context = %v", err)
	}
}

func decode(t *testing.T, src string) (probes.Probe, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	conns := plugin.NewConnections()
	conns.Add("aws", "prod", awsconn.New(awsconn.Options{Name: "prod", Region: "eu-central-1"}))
	factory, ok := probes.Registry.Lookup("aws_sts")
	if !ok {
		t.Fatal("aws_sts is not registered")
	}
	return factory(&plugin.Env{Policy: "p", Kind: "aws_sts", Connections: conns}, f.Body)
}

func TestFactory(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"",
		"connection = aws.prod\nexpect_arn = \"arn:aws:iam::123456789012:user/svc\"\nexpect_account = \"123456789012\"\n",
		"access_key_id_field = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_field = \"AWS_SECRET_ACCESS_KEY\"\n",
	} {
		if p, diags := decode(t, src); diags.HasErrors() || p == nil {
			t.Errorf("decode %q: %v", src, diags)
		}
	}
	for name, tc := range map[string]struct{ src, want string }{
		"unknown attribute":         {"expect_user = \"svc\"\n", "Unsupported argument"},
		"account must be 12 digits": {"expect_account = \"1234\"\n", "policy.hcl:1,1-24: Invalid expect_account"},
		"arn must be an arn":        {"expect_arn = \"svc\"\n", "Invalid expect_arn"},
		"undeclared connection":     {"connection = aws.nope\n", "Unknown connection"},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := decode(t, tc.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics %q, want one containing %q", diags.Error(), tc.want)
			}
		})
	}
}
