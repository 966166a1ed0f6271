package awsiam_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/providers/awsiam"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/awsemu"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

func rot(id string) plugin.Rotation {
	return plugin.Rotation{ID: id, Policy: "p", StartedAt: time.Now()}
}

// callerARN calls GetCallerIdentity with a key, as a dependent would.
func callerARN(ctx context.Context, env *awstest.Env, id, sec string) (string, error) {
	c := env.Conn.STSWithCredentials(credentials.NewStaticCredentialsProvider(id, sec, ""), 1)
	out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", err
	}
	return *out.Arn, nil
}

func codes(s *awsemu.Server, action string) []string {
	var out []string
	for _, c := range s.Ledger() {
		if c.Action == action {
			out = append(out, c.Code)
		}
	}
	return out
}

// assertNoLeak fails if text carries any of the values.
func assertNoLeak(t *testing.T, what, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		if v != "" && strings.Contains(text, v) {
			t.Errorf("%s leaks %q: %s", what, v, text)
		}
	}
}

func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	arn := env.Server.CreateUser("svc-payments")
	p := awsiam.NewProvider(env.Conn, "svc-payments", -1)

	if got, want := p.Target(), "aws_iam:test:svc-payments"; got != want {
		t.Errorf("Target() = %q, want %q", got, want)
	}
	if p.MaxKeys() != 2 || p.UsageReportingDelay() != awsiam.DefaultUsageDelay {
		t.Errorf("MaxKeys() = %d, UsageReportingDelay() = %v", p.MaxKeys(), p.UsageReportingDelay())
	}

	key, err := p.Create(ctx, rot("r1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id, sec := key.Value[awsiam.FieldAccessKeyID].Reveal(), key.Value[awsiam.FieldSecretAccessKey].Reveal()
	if key.ID == "" || id != key.ID || len(sec) != 40 || key.CreatedAt.IsZero() {
		t.Fatalf("Create returned id %q, field id %q, secret of %d chars, created %v", key.ID, id, len(sec), key.CreatedAt)
	}
	if ks := env.Server.Keys("svc-payments"); len(ks) != 1 || ks[0].ID != key.ID || ks[0].Status != "Active" {
		t.Fatalf("emulator keys after Create = %+v", ks)
	}
	for _, s := range []string{fmt.Sprint(key), fmt.Sprintf("%+v", key), fmt.Sprintf("%#v", key)} {
		assertNoLeak(t, "formatted key", s, sec)
	}

	list, err := p.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].ID != key.ID || list[0].Status != plugin.KeyActive || list[0].RotationID != "" ||
		!list[0].CreatedAt.Equal(key.CreatedAt.Truncate(time.Second)) && !list[0].CreatedAt.Equal(key.CreatedAt) {
		t.Fatalf("List = %+v, want the created key, active", list)
	}

	last, err := p.LastUsed(ctx, key.ID)
	if err != nil || !last.IsZero() {
		t.Fatalf("LastUsed of a fresh key = %v, %v; want zero, nil", last, err)
	}
	if _, err := callerARN(ctx, env, id, sec); awsconn.ErrorCode(err) != "InvalidClientTokenId" {
		t.Fatalf("GetCallerIdentity with the new key before IAM propagated it: %v, want InvalidClientTokenId", err)
	}
	env.Clock.Advance(time.Minute)
	if got, err := callerARN(ctx, env, id, sec); err != nil || got != arn {
		t.Fatalf("GetCallerIdentity with the new key = %q, %v; want %q", got, err, arn)
	}
	usedAt := env.Clock.Now()
	env.Settle()
	last, err = p.LastUsed(ctx, key.ID)
	if err != nil || last.Before(usedAt) || last.Sub(usedAt) >= awsiam.LastUsedResolution {
		t.Fatalf("LastUsed after a use at %v = %v, %v; want the end of that minute", usedAt, last, err)
	}

	if err := p.Deactivate(ctx, key.ID); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if list, _ := p.List(ctx); len(list) != 1 || list[0].Status != plugin.KeyInactive {
		t.Fatalf("List after Deactivate = %+v", list)
	}
	env.Settle()
	if _, err := callerARN(ctx, env, id, sec); awsconn.ErrorCode(err) != "InvalidClientTokenId" {
		t.Fatalf("GetCallerIdentity with the deactivated key: %v, want InvalidClientTokenId", err)
	}
	if err := p.Deactivate(ctx, key.ID); err != nil {
		t.Fatalf("Deactivate twice: %v", err)
	}
	if err := p.Activate(ctx, key.ID); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	env.Settle()
	if _, err := callerARN(ctx, env, id, sec); err != nil {
		t.Fatalf("GetCallerIdentity with the re-activated key: %v", err)
	}

	if err := p.Delete(ctx, key.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if ks := env.Server.Keys("svc-payments"); len(ks) != 0 {
		t.Fatalf("emulator keys after Delete = %+v", ks)
	}
	if err := p.Delete(ctx, key.ID); err != nil {
		t.Fatalf("Delete of a deleted key = %v, want nil", err)
	}
	if got := codes(env.Server, "DeleteAccessKey"); len(got) != 2 || got[0] != "" || got[1] != "NoSuchEntity" {
		t.Errorf("DeleteAccessKey outcomes = %q, want success then NoSuchEntity", got)
	}
	env.Settle()
	if _, err := callerARN(ctx, env, id, sec); err == nil {
		t.Fatal("GetCallerIdentity with the deleted key succeeded")
	}

	err = p.Deactivate(ctx, key.ID)
	if !errors.Is(err, plugin.ErrNotFound) || !plugin.IsPermanent(err) {
		t.Fatalf("Deactivate of a deleted key = %v, want permanent ErrNotFound", err)
	}
	assertNoLeak(t, "Deactivate error", err.Error(), key.ID, sec)
	if !strings.Contains(err.Error(), secret.Mask(key.ID)) {
		t.Errorf("Deactivate error %q does not name the masked key %s", err, secret.Mask(key.ID))
	}
	if _, err := p.LastUsed(ctx, key.ID); !errors.Is(err, plugin.ErrNotFound) {
		t.Errorf("LastUsed of a deleted key = %v, want ErrNotFound", err)
	} else {
		assertNoLeak(t, "LastUsed error", err.Error(), key.ID, sec)
	}
}

func TestCreateAtLimitNamesTheKeysMasked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	id1, sec1, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		t.Fatal(err)
	}
	id2, sec2, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		t.Fatal(err)
	}
	p := awsiam.NewProvider(env.Conn, "svc", 0)
	if err := p.Deactivate(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := callerARN(ctx, env, id1, sec1); err != nil {
		t.Fatal(err)
	}
	env.Settle() // IAM shows the use

	_, err = p.Create(ctx, rot("r1"))
	if !errors.Is(err, plugin.ErrLimit) || !plugin.IsPermanent(err) {
		t.Fatalf("Create at the limit = %v, want ErrLimit", err)
	}
	msg := err.Error()
	assertNoLeak(t, "limit error", msg, id1, id2, sec1, sec2)
	for _, want := range []string{
		secret.Mask(id1) + " (active", secret.Mask(id2) + " (inactive", "never used", "last used", "with sts in " + awstest.Region,
		"after confirming it is unused", "aws iam delete-access-key --user-name svc",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("limit error lacks %q:\n%s", want, msg)
		}
	}
	if ks := env.Server.Keys("svc"); len(ks) != 2 {
		t.Errorf("keys after a refused Create = %d, want 2", len(ks))
	}
}

// TestLastUseInTheCommitMinuteCountsAsAfter: IAM reports the last use
// rounded down to the minute. A use 20 seconds after a commit made 10
// seconds into the minute must not look older than the commit: LastUsed
// returns the end of the reported minute, so the engine's check
// "used at or after commit" holds, and a key still in use is never
// treated as idle.
func TestLastUseInTheCommitMinuteCountsAsAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	id, sec, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		t.Fatal(err)
	}
	p := awsiam.NewProvider(env.Conn, "svc", 0)
	now := env.Clock.Now()
	env.Clock.Advance(now.Truncate(time.Minute).Add(time.Minute + 10*time.Second).Sub(now))
	committedAt := env.Clock.Now()
	env.Clock.Advance(20 * time.Second)
	if _, err := callerARN(ctx, env, id, sec); err != nil {
		t.Fatal(err)
	}
	usedAt := env.Clock.Now()
	env.Settle()
	lu, err := p.LastUsed(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if lu.Before(committedAt) || lu.Before(usedAt) {
		t.Fatalf("LastUsed = %v for a use at %v, after the commit at %v: the use looks older than the commit", lu, usedAt, committedAt)
	}
	// A use in the minute before the commit's minute is before the commit.
	env.Clock.Advance(2 * time.Minute)
	lu2, err := p.LastUsed(ctx, id)
	if err != nil || !lu2.Equal(lu) || !lu.Before(committedAt.Add(time.Minute)) {
		t.Fatalf("LastUsed = %v (%v), want %v, before the next minute", lu2, err, lu)
	}
}

func TestThrottlingAndServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	p := awsiam.NewProvider(env.Conn, "svc", 0)

	env.Server.Throttle("CreateAccessKey", 2)
	key, err := p.Create(ctx, rot("r1"))
	if err != nil {
		t.Fatalf("Create with 2 throttled attempts: %v", err)
	}
	if got := codes(env.Server, "CreateAccessKey"); fmt.Sprint(got) != "[Throttling Throttling ]" {
		t.Errorf("CreateAccessKey outcomes = %q, want two Throttling then success", got)
	}
	if ks := env.Server.Keys("svc"); len(ks) != 1 {
		t.Errorf("keys = %d, want 1", len(ks))
	}

	env.Server.Fail("ListAccessKeys", 2)
	if list, err := p.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("List with 2 failed attempts = %v, %v", list, err)
	}

	env.Server.Throttle("DeleteAccessKey", awsconn.DefaultMaxAttempts)
	err = p.Delete(ctx, key.ID)
	if awsconn.ErrorCode(err) != "Throttling" || plugin.IsPermanent(err) {
		t.Fatalf("Delete throttled %d times = %v, want a retryable Throttling error", awsconn.DefaultMaxAttempts, err)
	}
	assertNoLeak(t, "Delete error", err.Error(), key.ID, key.Value[awsiam.FieldSecretAccessKey].Reveal())
	if n := len(codes(env.Server, "DeleteAccessKey")); n != awsconn.DefaultMaxAttempts {
		t.Errorf("DeleteAccessKey attempts = %d, want %d", n, awsconn.DefaultMaxAttempts)
	}
	if err := p.Delete(ctx, key.ID); err != nil {
		t.Fatalf("Delete after the throttling ended: %v", err)
	}
}

func TestAccessDeniedIsPermanent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	env.Server.CreateUser("other")
	id, sec, err := env.Server.CreateAccessKeyFor("other")
	if err != nil {
		t.Fatal(err)
	}
	p := awsiam.NewProvider(awstest.Conn(env.Server, "other", id, sec), "svc", 0)
	_, err = p.Create(ctx, rot("r1"))
	if awsconn.ErrorCode(err) != "AccessDenied" || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "grant the connection's identity") {
		t.Fatalf("Create without permission = %v, want a permanent AccessDenied with a hint", err)
	}
	assertNoLeak(t, "AccessDenied error", err.Error(), sec)

	bad := awsiam.NewProvider(awstest.Conn(env.Server, "bad", id, "not-the-secret-not-the-secret-not-the-0"), "other", 0)
	_, err = bad.List(ctx)
	if awsconn.ErrorCode(err) != "SignatureDoesNotMatch" || !plugin.IsPermanent(err) {
		t.Fatalf("List with a wrong secret = %v, want permanent SignatureDoesNotMatch", err)
	}
}

func TestCanarySecretNeverInErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := awstest.Start(t, 0)
	env.Server.CreateUser("svc")
	p := awsiam.NewProvider(env.Conn, "svc", 0)
	k1, err := p.Create(ctx, rot("r1"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := p.Create(ctx, rot("r2"))
	if err != nil {
		t.Fatal(err)
	}
	canaries := []string{
		k1.ID, k1.Value[awsiam.FieldSecretAccessKey].Reveal(),
		k2.ID, k2.Value[awsiam.FieldSecretAccessKey].Reveal(),
	}
	var errs []error
	_, err = p.Create(ctx, rot("r3"))
	errs = append(errs, err)
	for _, k := range []plugin.Key{k1, k2} {
		if err := p.Delete(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err := p.LastUsed(ctx, k.ID)
		errs = append(errs, err, p.Deactivate(ctx, k.ID), p.Activate(ctx, k.ID))
	}
	env.Server.Throttle("", 100)
	_, err = p.Create(ctx, rot("r4"))
	errs = append(errs, err, p.Delete(ctx, k1.ID))
	for i, err := range errs {
		if err == nil {
			t.Fatalf("error %d is nil", i)
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			assertNoLeak(t, fmt.Sprintf("error %d", i), s, canaries...)
		}
	}
}

func decode(t *testing.T, conns *plugin.Connections, src string) (providers.Provider, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	factory, ok := providers.Registry.Lookup("aws_iam")
	if !ok {
		t.Fatal("aws_iam is not registered")
	}
	return factory(&plugin.Env{Policy: "p", Kind: "aws_iam", Connections: conns}, f.Body)
}

func TestFactory(t *testing.T) {
	t.Parallel()
	conns := plugin.NewConnections()
	conns.Add("aws", "prod", awsconn.New(awsconn.Options{Name: "prod", Region: "eu-central-1"}))

	p, diags := decode(t, conns, `
connection  = aws.prod
user        = "svc-payments"
usage_delay = "1d"
propagation_delay = "5m"
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if p.Target() != "aws_iam:prod:svc-payments" || p.(providers.UsageReporter).UsageReportingDelay() != 24*time.Hour ||
		p.(providers.Propagator).PropagationDelay() != 5*time.Minute {
		t.Errorf("Target() = %q, delay %v, propagation %v", p.Target(), p.(providers.UsageReporter).UsageReportingDelay(), p.(providers.Propagator).PropagationDelay())
	}
	p, diags = decode(t, conns, "connection = aws.prod\nuser = \"a\"\n")
	if diags.HasErrors() || p.(providers.UsageReporter).UsageReportingDelay() != 4*time.Hour || p.(providers.Propagator).PropagationDelay() != time.Minute {
		t.Errorf("default usage delay and propagation: %v %v", diags, p)
	}

	for name, tc := range map[string]struct{ src, want string }{
		"unknown attribute is refused":       {"connection = aws.prod\nuser = \"a\"\nmax_keys = 3\n", `Unsupported argument`},
		"user is required":                   {"connection = aws.prod\n", `Missing required argument`},
		"user with a path is refused":        {"connection = aws.prod\nuser = \"/svc/a\"\n", `Invalid user`},
		"undeclared connection is refused":   {"connection = aws.staging\nuser = \"a\"\n", `No aws connection "staging"`},
		"connection of another kind":         {"connection = vault.prod\nuser = \"a\"\n", `Invalid connection reference`},
		"bad usage delay points at the attr": {"connection = aws.prod\nuser = \"a\"\nusage_delay = \"soon\"\n", `policy.hcl:3,1-21: Invalid usage_delay`},
		"bad propagation delay":              {"connection = aws.prod\nuser = \"a\"\npropagation_delay = \"-1s\"\n", `policy.hcl:3,1-26: Invalid propagation_delay`},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := decode(t, conns, tc.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics %q, want one containing %q", diags.Error(), tc.want)
			}
		})
	}
}
