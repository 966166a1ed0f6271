package awsemu_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/rekeyhq/rekey/testenv/awsemu"
)

// clock is an injectable clock that tests advance by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, opts awsemu.Options) *awsemu.Server {
	t.Helper()
	s, err := awsemu.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

type clients struct {
	iam *iam.Client
	sts *sts.Client
	sm  *secretsmanager.Client
}

// fastRetries is the SDK's standard retryer (its classification of
// retryable errors, its attempt count) with short back-off delays.
func fastRetries() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
	})
}

// sdk returns aws-sdk-go-v2 clients of the emulator signing with the given key.
func sdk(t *testing.T, s *awsemu.Server, id, secret string, extra ...func(*config.LoadOptions) error) clients {
	t.Helper()
	opts := append([]func(*config.LoadOptions) error{
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, "")),
		config.WithBaseEndpoint(s.URL()),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithRetryer(fastRetries),
	}, extra...)
	cfg, err := config.LoadDefaultConfig(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return clients{iam.NewFromConfig(cfg), sts.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)}
}

func admin(t *testing.T, s *awsemu.Server) clients {
	id, secret := s.AdminKey()
	return sdk(t, s, id, secret)
}

// wantErr asserts that err is the AWS error code with HTTP status (0: any).
func wantErr(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want AWS error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error code %s (%v), want %s", ae.ErrorCode(), err, code)
	}
	var re *awshttp.ResponseError
	if status != 0 && (!errors.As(err, &re) || re.HTTPStatusCode() != status) {
		t.Fatalf("got %v, want HTTP status %d", err, status)
	}
}

// must(f())(t) returns f's value, failing t if f returned an error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// codes returns the ledger's result codes for one action, in order.
func codes(s *awsemu.Server, action string) []string {
	var out []string
	for _, c := range s.Ledger() {
		if c.Action == action {
			out = append(out, c.Code)
		}
	}
	return out
}

func TestAccessKeyLifecycle(t *testing.T) {
	s := start(t, awsemu.Options{})
	a := admin(t, s)
	ctx := t.Context()
	s.CreateUser("alice")

	k1 := must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t).AccessKey
	if !regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(*k1.AccessKeyId) || len(*k1.SecretAccessKey) != 40 ||
		*k1.UserName != "alice" || k1.Status != iamtypes.StatusTypeActive || k1.CreateDate == nil {
		t.Fatalf("bad key %+v", k1)
	}
	k2 := must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t).AccessKey
	// Inactive keys count towards the limit of two.
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k1.AccessKeyId, Status: iamtypes.StatusTypeInactive}))(t)

	list := must(a.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")}))(t)
	if len(list.AccessKeyMetadata) != 2 || *list.AccessKeyMetadata[0].AccessKeyId != *k1.AccessKeyId ||
		list.AccessKeyMetadata[0].Status != iamtypes.StatusTypeInactive || list.AccessKeyMetadata[1].Status != iamtypes.StatusTypeActive ||
		*list.AccessKeyMetadata[1].UserName != "alice" || list.AccessKeyMetadata[1].CreateDate == nil || list.IsTruncated {
		t.Fatalf("ListAccessKeys = %+v", list.AccessKeyMetadata)
	}

	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"third key", func() error {
			_, err := a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
			return err
		}, "LimitExceeded", 409},
		{"key for unknown user", func() error {
			_, err := a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404},
		{"list keys of unknown user", func() error {
			_, err := a.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404},
		{"update unknown key", func() error {
			_, err := a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String("AKIAAAAAAAAAAAAAAAAA"), Status: iamtypes.StatusTypeActive})
			return err
		}, "NoSuchEntity", 404},
		{"update key of another user", func() error { // UserName omitted: the caller, admin
			_, err := a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{AccessKeyId: k2.AccessKeyId, Status: iamtypes.StatusTypeInactive})
			return err
		}, "NoSuchEntity", 404},
		{"bad status", func() error {
			_, err := a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k2.AccessKeyId, Status: "Disabled"})
			return err
		}, "ValidationError", 400},
		{"create existing user", func() error {
			_, err := a.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("alice")})
			return err
		}, "EntityAlreadyExists", 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.call(), tt.code, tt.status) })
	}

	must(a.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k1.AccessKeyId}))(t)
	_, err := a.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k1.AccessKeyId})
	wantErr(t, err, "NoSuchEntity", 404)
	if keys := s.Keys("alice"); len(keys) != 1 || keys[0].ID != *k2.AccessKeyId || keys[0].Status != "Active" {
		t.Fatalf("Keys = %+v", keys)
	}
	// A slot is free again.
	must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t)

	u := must(a.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("bob")}))(t).User
	if *u.Arn != "arn:aws:iam::123456789012:user/bob" || *u.UserName != "bob" || !strings.HasPrefix(*u.UserId, "AIDA") {
		t.Fatalf("CreateUser = %+v", u)
	}
	if got := must(a.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("bob")}))(t).User; *got.UserId != *u.UserId {
		t.Fatalf("GetUser = %+v", got)
	}
	if got := must(a.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")}))(t); len(got.AccessKeyMetadata) != 0 {
		t.Fatalf("bob's keys: %+v", got.AccessKeyMetadata)
	}
}

func TestDefaultsToCallerAndAuthorization(t *testing.T) {
	s := start(t, awsemu.Options{})
	ctx := t.Context()
	s.CreateUser("alice")
	s.CreateUser("bob")
	ids := must(firstTwo(s.CreateAccessKeyFor("alice")))(t)
	alice := sdk(t, s, ids[0], ids[1])

	// UserName omitted: the user of the signing key.
	k := must(alice.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{}))(t).AccessKey
	if *k.UserName != "alice" {
		t.Fatalf("key created for %s", *k.UserName)
	}
	if got := must(alice.iam.GetUser(ctx, &iam.GetUserInput{}))(t).User; *got.UserName != "alice" {
		t.Fatalf("GetUser = %s", *got.UserName)
	}
	if got := must(alice.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{}))(t); len(got.AccessKeyMetadata) != 2 {
		t.Fatalf("ListAccessKeys = %d keys", len(got.AccessKeyMetadata))
	}
	must(alice.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	must(alice.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("alice-secret"), SecretString: aws.String("x")}))(t)

	denied := []struct {
		name string
		call func() error
	}{
		{"CreateAccessKey for bob", func() error {
			_, err := alice.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("bob")})
			return err
		}},
		{"ListAccessKeys of bob", func() error {
			_, err := alice.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
			return err
		}},
		{"ListAccessKeys of unknown user", func() error {
			_, err := alice.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("nobody")})
			return err
		}},
		{"CreateUser", func() error {
			_, err := alice.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("carol")})
			return err
		}},
		{"GetAccessKeyLastUsed of admin's key", func() error {
			id, _ := s.AdminKey()
			_, err := alice.iam.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
			return err
		}},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.call(), "AccessDenied", 403) })
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// firstTwo packs CreateAccessKeyFor's id and secret for must.
func firstTwo(a, b string, err error) ([2]string, error) { return [2]string{a, b}, err }

func TestAuthentication(t *testing.T) {
	s := start(t, awsemu.Options{})
	a := admin(t, s)
	ctx := t.Context()
	s.CreateUser("alice")
	for range 2 {
		must(firstTwo(s.CreateAccessKeyFor("alice")))(t)
	}
	keys := s.Keys("alice")
	deleted, inactive := keys[0].ID, keys[1].ID
	must(a.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String(deleted)}))(t)
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String(inactive), Status: iamtypes.StatusTypeInactive}))(t)
	adminID, adminSecret := s.AdminKey()
	// A secret that differs from the admin's in its last character (the
	// secret is random: replacing with a fixed letter would sometimes not
	// change it).
	wrongSecret := adminSecret[:39] + "x"
	if adminSecret[39] == 'x' {
		wrongSecret = adminSecret[:39] + "y"
	}

	tests := []struct {
		name, id, secret      string
		queryCode, smCode     string
		queryStatus, smStatus int
	}{
		{"unknown key", "AKIAXXXXXXXXXXXXXXXX", adminSecret, "InvalidClientTokenId", "UnrecognizedClientException", 403, 400},
		{"deleted key", deleted, "any-secret-at-all-any-secret-at-all-0000", "InvalidClientTokenId", "UnrecognizedClientException", 403, 400},
		{"inactive key", inactive, "any-secret-at-all-any-secret-at-all-0000", "InvalidClientTokenId", "UnrecognizedClientException", 403, 400},
		{"wrong secret", adminID, wrongSecret, "SignatureDoesNotMatch", "InvalidSignatureException", 403, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sdk(t, s, tt.id, tt.secret)
			_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			wantErr(t, err, tt.queryCode, tt.queryStatus)
			_, err = c.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
			wantErr(t, err, tt.queryCode, tt.queryStatus)
			_, err = c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("x")})
			wantErr(t, err, tt.smCode, tt.smStatus)
		})
	}
	// The right key works; so does the inactive one once reactivated.
	if got := must(a.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t); *got.Arn != "arn:aws:iam::123456789012:user/admin" || *got.Account != "123456789012" {
		t.Fatalf("GetCallerIdentity = %s %s", *got.Arn, *got.Account)
	}
	// A deleted key is never authenticated again, per the ledger.
	for _, c := range s.Ledger() {
		if c.AccessKeyID == deleted && c.Code == "" {
			t.Fatalf("deleted key used successfully: %+v", c)
		}
		if c.AccessKeyID == deleted && c.User != "alice" {
			t.Fatalf("ledger does not name the deleted key's user: %+v", c)
		}
	}
}

func TestReactivatedKeyAndIdentity(t *testing.T) {
	s := start(t, awsemu.Options{AccountID: "210987654321"})
	a := admin(t, s)
	ctx := t.Context()
	s.CreateUser("svc")
	ids := must(firstTwo(s.CreateAccessKeyFor("svc")))(t)
	c := sdk(t, s, ids[0], ids[1])
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("svc"), AccessKeyId: aws.String(ids[0]), Status: iamtypes.StatusTypeInactive}))(t)
	_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantErr(t, err, "InvalidClientTokenId", 403)
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("svc"), AccessKeyId: aws.String(ids[0]), Status: iamtypes.StatusTypeActive}))(t)
	got := must(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	if *got.Arn != "arn:aws:iam::210987654321:user/svc" || *got.Account != "210987654321" || !strings.HasPrefix(*got.UserId, "AIDA") {
		t.Fatalf("GetCallerIdentity = %s %s %s", *got.Arn, *got.Account, *got.UserId)
	}
}

func TestConsistencyDelay(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{ConsistencyDelay: 10 * time.Second, Now: clk.Now})
	a := admin(t, s) // AdminKey works at once
	ctx := t.Context()
	s.CreateUser("alice")

	k := must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t).AccessKey
	c := sdk(t, s, *k.AccessKeyId, *k.SecretAccessKey)
	_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantErr(t, err, "InvalidClientTokenId", 403)
	clk.Advance(9 * time.Second)
	_, err = c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantErr(t, err, "InvalidClientTokenId", 403)
	clk.Advance(time.Second)
	if got := must(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t); *got.Arn != "arn:aws:iam::123456789012:user/alice" {
		t.Fatalf("Arn = %s", *got.Arn)
	}
	// Keys made for test setup are not delayed.
	ids := must(firstTwo(s.CreateAccessKeyFor("alice")))(t)
	must(sdk(t, s, ids[0], ids[1]).sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)

	if got, want := fmt.Sprint(codes(s, "GetCallerIdentity")), "[InvalidClientTokenId InvalidClientTokenId  ]"; got != want {
		t.Fatalf("ledger codes %s, want %s", got, want)
	}
}

func TestLastUsed(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now, Region: "eu-west-1"})
	a := admin(t, s)
	ctx := t.Context()
	s.CreateUser("alice")
	ids := must(firstTwo(s.CreateAccessKeyFor("alice")))(t)

	lastUsed := func() *iamtypes.AccessKeyLastUsed {
		out := must(a.iam.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(ids[0])}))(t)
		if *out.UserName != "alice" {
			t.Fatalf("UserName = %s", *out.UserName)
		}
		return out.AccessKeyLastUsed
	}
	if lu := lastUsed(); lu.LastUsedDate != nil || *lu.ServiceName != "N/A" || *lu.Region != "N/A" {
		t.Fatalf("never used key: %+v", lu)
	}

	clk.Advance(time.Minute)
	usedAt := clk.Now().UTC().Truncate(time.Second)
	c := sdk(t, s, ids[0], ids[1], config.WithRegion("eu-west-1"))
	must(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	clk.Advance(time.Minute)
	if lu := lastUsed(); lu.LastUsedDate == nil || !lu.LastUsedDate.Equal(usedAt) || *lu.ServiceName != "sts" || *lu.Region != "eu-west-1" {
		t.Fatalf("after STS: %v %s %s, want %v sts eu-west-1", lu.LastUsedDate, *lu.ServiceName, *lu.Region, usedAt)
	}
	_, err := c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("none")})
	wantErr(t, err, "ResourceNotFoundException", 400) // authenticated, so the key was used
	if lu := lastUsed(); *lu.ServiceName != "secretsmanager" || lu.LastUsedDate.Equal(usedAt) {
		t.Fatalf("after Secrets Manager: %v %s", lu.LastUsedDate, *lu.ServiceName)
	}
	if k := s.Keys("alice")[0]; k.LastUsedService != "secretsmanager" || k.LastUsedRegion != "eu-west-1" || k.LastUsed.IsZero() {
		t.Fatalf("Keys = %+v", k)
	}
	// A failed authentication is not a use.
	before := s.Keys("alice")[0].LastUsed
	clk.Advance(time.Minute)
	_, err = sdk(t, s, ids[0], strings.Repeat("x", 40)).sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantErr(t, err, "SignatureDoesNotMatch", 403)
	if after := s.Keys("alice")[0].LastUsed; !after.Equal(before) {
		t.Fatalf("last used moved on a bad signature: %v -> %v", before, after)
	}
	// Unknown key: NoSuchEntity.
	_, err = a.iam.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String("AKIAXXXXXXXXXXXXXXXX")})
	wantErr(t, err, "NoSuchEntity", 404)
}

func TestThrottlingIsRetriedBySDK(t *testing.T) {
	s := start(t, awsemu.Options{})
	ctx := t.Context()
	id, secret := s.AdminKey()
	// The SDK's default retryer, default back-off included.
	cfg := must(config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"), config.WithBaseEndpoint(s.URL()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{})))(t)
	s.Throttle("GetCallerIdentity", 1)
	must(sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	if got := fmt.Sprint(codes(s, "GetCallerIdentity")); got != "[Throttling ]" {
		t.Fatalf("ledger: %s", got)
	}

	a := admin(t, s)
	s.CreateUser("alice")
	s.Throttle("CreateAccessKey", 2)
	must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t)
	if got := fmt.Sprint(codes(s, "CreateAccessKey")); got != "[Throttling Throttling ]" {
		t.Fatalf("ledger: %s", got)
	}

	must(a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s")}))(t)
	s.Throttle("PutSecretValue", 2)
	must(a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String("v")}))(t)
	if got := fmt.Sprint(codes(s, "PutSecretValue")); got != "[ThrottlingException ThrottlingException ]" {
		t.Fatalf("ledger: %s", got)
	}
	// Throttled attempts reuse one ClientRequestToken: exactly one version.
	if v := must(a.sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(true)}))(t); len(v.Versions) != 1 {
		t.Fatalf("%d versions", len(v.Versions))
	}

	// "" throttles whatever comes next; more throttles than attempts fail the call.
	s.Throttle("", 3)
	_, err := a.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
	wantErr(t, err, "Throttling", 400)
}

func TestFail(t *testing.T) {
	s := start(t, awsemu.Options{})
	a := admin(t, s)
	ctx := t.Context()
	s.Fail("ListAccessKeys", 1)
	must(a.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{}))(t)
	if got := fmt.Sprint(codes(s, "ListAccessKeys")); got != "[InternalFailure ]" {
		t.Fatalf("ledger: %s", got)
	}
	s.Fail("GetSecretValue", 3) // the standard retryer makes 3 attempts
	_, err := a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("x")})
	wantErr(t, err, "InternalFailure", 500)
	_, err = a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("x")})
	wantErr(t, err, "ResourceNotFoundException", 400)
}

func TestSecretsManager(t *testing.T) {
	s := start(t, awsemu.Options{Region: "eu-central-1", AccountID: "111122223333"})
	id, secret := s.AdminKey()
	a := sdk(t, s, id, secret, config.WithRegion("eu-central-1"))
	ctx := t.Context()
	const (
		tok2 = "00000000-0000-4000-8000-000000000002"
		tok3 = "00000000-0000-4000-8000-000000000003"
	)

	created := must(a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"),
		SecretString: aws.String("v1"), Description: aws.String("db password"), KmsKeyId: aws.String("alias/rekey")}))(t)
	if !regexp.MustCompile(`^arn:aws:secretsmanager:eu-central-1:111122223333:secret:app/db-[A-Za-z0-9]{6}$`).MatchString(*created.ARN) ||
		*created.Name != "app/db" || created.VersionId == nil {
		t.Fatalf("CreateSecret = %+v", created)
	}
	v1 := *created.VersionId
	_, err := a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("x")})
	wantErr(t, err, "ResourceExistsException", 400)

	get := func(id, stage, version string) (string, string, error) {
		in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}
		if stage != "" {
			in.VersionStage = aws.String(stage)
		}
		if version != "" {
			in.VersionId = aws.String(version)
		}
		out, err := a.sm.GetSecretValue(ctx, in)
		if err != nil {
			return "", "", err
		}
		return *out.SecretString, *out.VersionId, nil
	}
	stages := func() string {
		d := must(a.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: created.ARN}))(t)
		return fmt.Sprint(d.VersionIdsToStages)
	}

	// PutSecretValue with AWSPENDING leaves AWSCURRENT where it is.
	put := must(a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"),
		SecretString: aws.String("v2"), ClientRequestToken: aws.String(tok2), VersionStages: []string{"AWSPENDING"}}))(t)
	if *put.VersionId != tok2 || fmt.Sprint(put.VersionStages) != "[AWSPENDING]" || *put.ARN != *created.ARN {
		t.Fatalf("PutSecretValue = %+v", put)
	}
	// Same token, same value: the same version, nothing changes.
	again := must(a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN,
		SecretString: aws.String("v2"), ClientRequestToken: aws.String(tok2)}))(t)
	if *again.VersionId != tok2 || fmt.Sprint(again.VersionStages) != "[AWSPENDING]" {
		t.Fatalf("idempotent PutSecretValue = %+v", again)
	}
	if got, want := stages(), fmt.Sprintf("map[%s:[AWSPENDING] %s:[AWSCURRENT]]", tok2, v1); got != want && got != fmt.Sprintf("map[%s:[AWSCURRENT] %s:[AWSPENDING]]", v1, tok2) {
		t.Fatalf("stages %s, want %s", got, want)
	}

	errs := []struct {
		name string
		call func() error
		code string
	}{
		{"same token, other value", func() error {
			_, err := a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"), SecretString: aws.String("v2'"), ClientRequestToken: aws.String(tok2)})
			return err
		}, "ResourceExistsException"},
		{"short token", func() error {
			_, err := a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"), SecretString: aws.String("v"), ClientRequestToken: aws.String("short")})
			return err
		}, "ValidationException"},
		{"move AWSCURRENT without RemoveFromVersionId", func() error {
			_, err := a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok2)})
			return err
		}, "InvalidParameterException"},
		{"move AWSCURRENT with the wrong RemoveFromVersionId", func() error {
			_, err := a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok2), RemoveFromVersionId: aws.String(tok2)})
			return err
		}, "InvalidParameterException"},
		{"move to unknown version", func() error {
			_, err := a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok3), RemoveFromVersionId: aws.String(v1)})
			return err
		}, "ResourceNotFoundException"},
		{"remove AWSCURRENT without moving it", func() error {
			_, err := a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSCURRENT"), RemoveFromVersionId: aws.String(v1)})
			return err
		}, "InvalidParameterException"},
		{"unknown secret", func() error { _, _, err := get("app/none", "", ""); return err }, "ResourceNotFoundException"},
		{"unknown stage", func() error { _, _, err := get("app/db", "AWSPREVIOUS", ""); return err }, "ResourceNotFoundException"},
		{"unknown version", func() error { _, _, err := get("app/db", "", tok3); return err }, "ResourceNotFoundException"},
		{"put to unknown secret", func() error {
			_, err := a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/none"), SecretString: aws.String("v")})
			return err
		}, "ResourceNotFoundException"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.call(), tt.code, 400) })
	}
	if got, _, _ := get("app/db", "", ""); got != "v1" {
		t.Fatalf("AWSCURRENT after refused moves = %s", got)
	}

	// The move, done right: the old current version becomes AWSPREVIOUS.
	must(a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"),
		VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok2), RemoveFromVersionId: aws.String(v1)}))(t)
	for _, c := range []struct{ stage, version, want string }{
		{"", "", "v2"}, {"AWSCURRENT", "", "v2"}, {"AWSPENDING", "", "v2"}, {"AWSPREVIOUS", "", "v1"}, {"", v1, "v1"}, {"AWSPREVIOUS", v1, "v1"},
	} {
		if got, _, err := get("app/db", c.stage, c.version); err != nil || got != c.want {
			t.Fatalf("GetSecretValue(%q, %q) = %q, %v; want %q", c.stage, c.version, got, err, c.want)
		}
	}
	// Removing a label only.
	must(a.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"),
		VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tok2)}))(t)
	_, _, err = get("app/db", "AWSPENDING", "")
	wantErr(t, err, "ResourceNotFoundException", 400)

	// A default put moves AWSCURRENT to the new version, AWSPREVIOUS to v2;
	// v1 keeps no label: deprecated, listed only with IncludeDeprecated.
	put3 := must(a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"),
		SecretString: aws.String("v3"), ClientRequestToken: aws.String(tok3)}))(t)
	if fmt.Sprint(put3.VersionStages) != "[AWSCURRENT]" {
		t.Fatalf("stages %v", put3.VersionStages)
	}
	if got, _, _ := get("app/db", "AWSPREVIOUS", ""); got != "v2" {
		t.Fatalf("AWSPREVIOUS = %s", got)
	}
	desc := must(a.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")}))(t)
	if len(desc.VersionIdsToStages) != 2 || fmt.Sprint(desc.VersionIdsToStages[tok3]) != "[AWSCURRENT]" ||
		fmt.Sprint(desc.VersionIdsToStages[tok2]) != "[AWSPREVIOUS]" || *desc.KmsKeyId != "alias/rekey" ||
		*desc.Description != "db password" || *desc.ARN != *created.ARN || desc.CreatedDate == nil || desc.LastChangedDate == nil ||
		desc.LastAccessedDate != nil {
		t.Fatalf("DescribeSecret = %+v", desc)
	}
	list := func(deprecated bool) []string {
		out := must(a.sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("app/db"), IncludeDeprecated: aws.Bool(deprecated)}))(t)
		var ids []string
		for _, v := range out.Versions {
			if v.CreatedDate == nil {
				t.Fatalf("no CreatedDate: %+v", v)
			}
			ids = append(ids, fmt.Sprintf("%s%v", *v.VersionId, v.VersionStages))
		}
		return ids
	}
	if got, want := fmt.Sprint(list(false)), fmt.Sprintf("[%s[AWSPREVIOUS] %s[AWSCURRENT]]", tok2, tok3); got != want {
		t.Fatalf("versions %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(list(true)), fmt.Sprintf("[%s[] %s[AWSPREVIOUS] %s[AWSCURRENT]]", v1, tok2, tok3); got != want {
		t.Fatalf("versions %s, want %s", got, want)
	}
	if got, _, _ := get("app/db", "", v1); got != "v1" {
		t.Fatalf("deprecated version = %q", got)
	}

	// A secret without a value: its first version gets AWSCURRENT, whatever the stages asked.
	must(a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("empty")}))(t)
	p := must(a.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("empty"), SecretString: aws.String("e"), VersionStages: []string{"AWSPENDING"}}))(t)
	if fmt.Sprint(p.VersionStages) != "[AWSPENDING AWSCURRENT]" {
		t.Fatalf("first version stages %v", p.VersionStages)
	}

	// Binary values round-trip.
	must(a.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: []byte{0, 1, 2, 255}}))(t)
	if out := must(a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")}))(t); !bytes.Equal(out.SecretBinary, []byte{0, 1, 2, 255}) || out.SecretString != nil {
		t.Fatalf("binary = %v", out.SecretBinary)
	}

	// Secrets Manager is regional: a request signed for another region fails.
	_, err = sdk(t, s, id, secret, config.WithRegion("us-east-1")).sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("bin")})
	wantErr(t, err, "InvalidSignatureException", 400)
}

func TestClockSkewCorrectedBySDK(t *testing.T) {
	clk := newClock()
	clk.Advance(time.Hour) // the emulator's clock is an hour ahead of the client's
	s := start(t, awsemu.Options{Now: clk.Now})
	a := admin(t, s)
	must(a.sts.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}))(t)
	// The first attempt is refused as expired; the SDK reads the Date
	// header, corrects its clock and signs again.
	if got := fmt.Sprint(codes(s, "GetCallerIdentity")); got != "[SignatureDoesNotMatch ]" {
		t.Fatalf("ledger: %s", got)
	}
}

// signed sends a request signed by the SDK's SigV4 signer, then lets tamper
// alter it, and returns the HTTP status and body.
func signed(t *testing.T, s *awsemu.Server, id, secret, service, region string, at time.Time, body string, header http.Header, tamper func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for k, v := range header {
		req.Header[k] = v
	}
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(body), service, region, at); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSigV4(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now})
	id, secret := s.AdminKey()
	now := clk.Now()
	const q = "Action=GetCallerIdentity&Version=2011-06-15"
	xmlCode := regexp.MustCompile(`<Code>(\w+)</Code>`)
	tests := []struct {
		name, service, region, body string
		at                          time.Time
		header                      http.Header
		tamper                      func(*http.Request)
		status                      int
		code                        string // "" = success
	}{
		{"valid", "sts", "us-east-1", q, now, nil, nil, 200, ""},
		{"valid, 14 minutes old", "sts", "us-east-1", q, now.Add(-14 * time.Minute), nil, nil, 200, ""},
		{"16 minutes old", "sts", "us-east-1", q, now.Add(-16 * time.Minute), nil, nil, 403, "SignatureDoesNotMatch"},
		{"16 minutes ahead", "sts", "us-east-1", q, now.Add(16 * time.Minute), nil, nil, 403, "SignatureDoesNotMatch"},
		{"body changed after signing", "sts", "us-east-1", q, now, nil, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(q + "&x=1"))
			r.ContentLength += 4
		}, 403, "SignatureDoesNotMatch"},
		{"signed header changed", "sts", "us-east-1", q, now, http.Header{"X-Amz-Meta": {"a"}}, func(r *http.Request) { r.Header.Set("X-Amz-Meta", "b") }, 403, "SignatureDoesNotMatch"},
		{"unsigned header changed", "sts", "us-east-1", q, now, nil, func(r *http.Request) { r.Header.Set("User-Agent", "other") }, 200, ""},
		{"content hash header mismatch", "sts", "us-east-1", q, now, http.Header{"X-Amz-Content-Sha256": {sha256Hex("other")}}, nil, 403, "SignatureDoesNotMatch"},
		{"content hash header match", "sts", "us-east-1", q, now, http.Header{"X-Amz-Content-Sha256": {sha256Hex(q)}}, nil, 200, ""},
		{"scope of another service", "s3", "us-east-1", q, now, nil, nil, 403, "SignatureDoesNotMatch"},
		{"no Authorization", "sts", "us-east-1", q, now, nil, func(r *http.Request) { r.Header.Del("Authorization") }, 403, "MissingAuthenticationToken"},
		{"malformed Authorization", "sts", "us-east-1", q, now, nil, func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x") }, 400, "IncompleteSignature"},
		{"scope date is not the request date", "sts", "us-east-1", q, now, nil, func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), now.UTC().Format("/20060102/"), "/20000101/", 1))
		}, 403, "SignatureDoesNotMatch"},
		{"unknown action", "iam", "us-east-1", "Action=Frobnicate&Version=2010-05-08", now, nil, nil, 400, "InvalidAction"},
		{"wrong version", "iam", "us-east-1", "Action=GetUser&Version=2099-01-01", now, nil, nil, 400, "InvalidAction"},
		{"IAM signed for another region", "iam", "ap-south-1", "Action=GetUser&Version=2010-05-08", now, nil, nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := signed(t, s, id, secret, tt.service, tt.region, tt.at, tt.body, tt.header, tt.tamper)
			code := ""
			if m := xmlCode.FindStringSubmatch(body); m != nil {
				code = m[1]
			}
			if status != tt.status || code != tt.code {
				t.Fatalf("got %d %q, want %d %q: %s", status, code, tt.status, tt.code, body)
			}
			if tt.code != "" && !strings.Contains(body, "<ErrorResponse") || tt.code == "" && !strings.Contains(body, "<RequestId>") {
				t.Fatalf("bad response shape: %s", body)
			}
		})
	}

	// Query parameters in the URL (a GET), encoded the SigV4 way.
	req, _ := http.NewRequest("GET", s.URL()+"/?"+url.Values{"Action": {"GetUser"}, "Version": {"2010-05-08"}, "UserName": {"admin"}, "X": {"a b/~*"}}.Encode(), nil)
	if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, req, sha256Hex(""), "iam", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "<UserName>admin</UserName>") {
		t.Fatalf("GET: %d %s", resp.StatusCode, b)
	}
}

func TestSecretsManagerProtocol(t *testing.T) {
	s := start(t, awsemu.Options{})
	id, secret := s.AdminKey()
	send := func(target, body string) (int, string) {
		return signed(t, s, id, secret, "secretsmanager", "us-east-1", time.Now(), body,
			http.Header{"X-Amz-Target": {target}, "Content-Type": {"application/x-amz-json-1.1"}}, nil)
	}
	tests := []struct{ target, body, want string }{
		{"secretsmanager.GetSecretValue", `{"SecretId":"none"}`, `{"Message":"Secrets Manager can't find the specified secret.","__type":"ResourceNotFoundException"}`},
		{"secretsmanager.Frobnicate", `{}`, `"__type":"UnknownOperationException"`},
		{"secretsmanager.GetSecretValue", `{"SecretId":`, `"__type":"SerializationException"`},
		{"kms.Decrypt", `{}`, `"__type":"UnknownOperationException"`},
	}
	for _, tt := range tests {
		status, body := send(tt.target, tt.body)
		if status != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s: %d %s, want %s", tt.target, tt.body, status, body, tt.want)
		}
	}
}

func TestLedger(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now})
	a := admin(t, s)
	adminID, _ := s.AdminKey()
	ctx := t.Context()
	s.CreateUser("alice")
	k := must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t).AccessKey
	clk.Advance(time.Second)
	alice := sdk(t, s, *k.AccessKeyId, *k.SecretAccessKey)
	must(alice.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	_, err := alice.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("admin")})
	wantErr(t, err, "AccessDenied", 403)

	got := s.Ledger()
	want := []awsemu.Call{
		{Time: got[0].Time, Action: "CreateAccessKey", AccessKeyID: adminID, User: "admin"},
		{Time: got[0].Time.Add(time.Second), Action: "GetCallerIdentity", AccessKeyID: *k.AccessKeyId, User: "alice"},
		{Time: got[0].Time.Add(time.Second), Action: "ListAccessKeys", AccessKeyID: *k.AccessKeyId, User: "alice", Code: "AccessDenied"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger\n got %v\nwant %v", got, want)
	}
}

func TestConcurrentKeyCreation(t *testing.T) {
	s := start(t, awsemu.Options{})
	a := admin(t, s)
	s.CreateUser("bob")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := a.iam.CreateAccessKey(t.Context(), &iam.CreateAccessKeyInput{UserName: aws.String("bob")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else {
			wantErr(t, err, "LimitExceeded", 409)
		}
	}
	if ok != 2 || len(s.Keys("bob")) != 2 {
		t.Fatalf("%d keys created, %d kept; want 2", ok, len(s.Keys("bob")))
	}
}

func TestTestSetupAPI(t *testing.T) {
	s := start(t, awsemu.Options{})
	if arn := s.CreateUser("alice"); arn != "arn:aws:iam::123456789012:user/alice" {
		t.Fatalf("arn %s", arn)
	}
	if arn := s.CreateUser("alice"); arn != "arn:aws:iam::123456789012:user/alice" {
		t.Fatalf("second CreateUser: arn %s", arn)
	}
	if _, _, err := s.CreateAccessKeyFor("nobody"); err == nil || !strings.Contains(err.Error(), "NoSuchEntity") {
		t.Fatalf("unknown user: %v", err)
	}
	for range 2 {
		must(firstTwo(s.CreateAccessKeyFor("alice")))(t)
	}
	if _, _, err := s.CreateAccessKeyFor("alice"); err == nil || !strings.Contains(err.Error(), "LimitExceeded") {
		t.Fatalf("third key: %v", err)
	}
	id1, secret1 := s.AdminKey()
	id2, secret2 := s.AdminKey()
	if id1 != id2 || secret1 != secret2 || len(s.Keys("admin")) != 1 {
		t.Fatal("AdminKey is not stable")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL())
	}
	if s.Keys("nobody") != nil {
		t.Fatal("keys for unknown user")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := s.AdminKey()
	httpClient := awshttp.NewBuildableClient()
	cfg := must(config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"), config.WithBaseEndpoint(s.URL()),
		config.WithHTTPClient(httpClient), config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, ""))))(t)
	must(sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{}))(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	httpClient.GetTransport().CloseIdleConnections()
	if _, err := http.Get(s.URL()); err == nil {
		t.Fatal("still serving after Close")
	}
}
