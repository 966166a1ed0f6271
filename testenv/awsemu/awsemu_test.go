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
	t.Logf("emulator seed %d (%s=%d repeats it)", s.Seed(), awsemu.SeedEnv, s.Seed())
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
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now})
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
	clk.Advance(s.SettledAt().Sub(clk.Now())) // both changes reached authentication
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
	clk := newClock()
	s := start(t, awsemu.Options{AccountID: "210987654321", Now: clk.Now})
	a := admin(t, s)
	ctx := t.Context()
	s.CreateUser("svc")
	ids := must(firstTwo(s.CreateAccessKeyFor("svc")))(t)
	c := sdk(t, s, ids[0], ids[1])
	settle := func() { clk.Advance(s.SettledAt().Sub(clk.Now())) }
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("svc"), AccessKeyId: aws.String(ids[0]), Status: iamtypes.StatusTypeInactive}))(t)
	settle()
	_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantErr(t, err, "InvalidClientTokenId", 403)
	must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("svc"), AccessKeyId: aws.String(ids[0]), Status: iamtypes.StatusTypeActive}))(t)
	settle()
	got := must(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	if *got.Arn != "arn:aws:iam::210987654321:user/svc" || *got.Account != "210987654321" || !strings.HasPrefix(*got.UserId, "AIDA") {
		t.Fatalf("GetCallerIdentity = %s %s %s", *got.Arn, *got.Account, *got.UserId)
	}
}

// TestConsistencyDelay: every access key state change made through the API
// reaches authentication after a delay drawn from [d/2, d]; until then the
// key is authenticated as before the change. ListAccessKeys and the quota
// see the change at once.
func TestConsistencyDelay(t *testing.T) {
	const d = 10 * time.Second
	clk := newClock()
	s := start(t, awsemu.Options{ConsistencyDelay: d, Seed: 7, Now: clk.Now})
	if s.Seed() != 7 {
		t.Fatalf("Seed() = %d, want 7", s.Seed())
	}
	a := admin(t, s) // AdminKey works at once
	ctx := t.Context()
	s.CreateUser("alice")
	var c clients
	works := func() bool {
		t.Helper()
		_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			wantErr(t, err, "InvalidClientTokenId", 403)
		}
		return err == nil
	}
	// step checks the key's authentication just before d/2 (as before the
	// change) and at d (after it).
	step := func(name string, before bool, change func()) {
		t.Helper()
		start := clk.Now()
		change()
		clk.Advance(d/2 - time.Millisecond)
		if got := works(); got != before {
			t.Fatalf("%s: key works %v just before %v, want %v (as before the change)", name, got, d/2, before)
		}
		clk.Advance(start.Add(d).Sub(clk.Now()))
		if got := works(); got == before {
			t.Fatalf("%s: key works %v after %v, want %v", name, got, d, !before)
		}
	}
	var k *iamtypes.AccessKey
	step("CreateAccessKey", false, func() {
		k = must(a.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}))(t).AccessKey
		c = sdk(t, s, *k.AccessKeyId, *k.SecretAccessKey)
	})
	update := func(st iamtypes.StatusType) func() {
		return func() {
			must(a.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k.AccessKeyId, Status: st}))(t)
			if got := s.Keys("alice")[0].Status; got != string(st) {
				t.Fatalf("ListAccessKeys status %s right after UpdateAccessKey %s", got, st)
			}
		}
	}
	step("UpdateAccessKey Inactive", true, update(iamtypes.StatusTypeInactive))
	step("UpdateAccessKey Active", false, update(iamtypes.StatusTypeActive))

	// Changes reach authentication in order: Inactive then Active at once
	// ends Active, whatever delays were drawn.
	update(iamtypes.StatusTypeInactive)()
	update(iamtypes.StatusTypeActive)()
	clk.Advance(s.SettledAt().Sub(clk.Now()))
	if !works() {
		t.Fatal("Inactive then Active: the key ends refused")
	}

	step("DeleteAccessKey", true, func() {
		must(a.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k.AccessKeyId}))(t)
		if n := len(s.Keys("alice")); n != 0 {
			t.Fatalf("ListAccessKeys shows %d keys right after DeleteAccessKey", n)
		}
		// The quota is freed at once too.
		for range 2 {
			must(firstTwo(s.CreateAccessKeyFor("alice")))(t)
		}
	})
	// Keys made for test setup are not delayed.
	s.CreateUser("bob")
	ids := must(firstTwo(s.CreateAccessKeyFor("bob")))(t)
	must(sdk(t, s, ids[0], ids[1]).sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
}

// TestConsistencyDelaySpreadIsSeeded: the delay of each change is random
// within [d/2, d], the same for the same seed, and the default is on.
func TestConsistencyDelaySpreadIsSeeded(t *testing.T) {
	const d = 8 * time.Second
	// effect returns when the first API-created key of an emulator with
	// the given seed starts to authenticate, to the millisecond.
	effect := func(seed uint64) time.Duration {
		clk := newClock()
		// Uses are shown at once: SettledAt then measures the key alone.
		s := start(t, awsemu.Options{ConsistencyDelay: d, UsageDelay: awsemu.Immediate, Seed: seed, Now: clk.Now})
		s.CreateUser("u")
		must(admin(t, s).iam.CreateAccessKey(t.Context(), &iam.CreateAccessKeyInput{UserName: aws.String("u")}))(t)
		return s.SettledAt().Sub(clk.Now())
	}
	seen := map[time.Duration]bool{}
	for seed := uint64(1); seed <= 6; seed++ {
		got := effect(seed)
		if got < d/2 || got > d {
			t.Fatalf("seed %d: delay %v outside [%v, %v]", seed, got, d/2, d)
		}
		if again := effect(seed); again != got {
			t.Fatalf("seed %d: delay %v then %v", seed, got, again)
		}
		seen[got] = true
	}
	if len(seen) < 3 {
		t.Fatalf("6 seeds gave only %d distinct delays: %v", len(seen), seen)
	}
	s := start(t, awsemu.Options{})
	if o := s.Options(); o.ConsistencyDelay != awsemu.DefaultConsistencyDelay || o.UsageDelay != awsemu.DefaultUsageDelay || s.Seed() == 0 {
		t.Fatalf("defaults: %+v seed %d", o, s.Seed())
	}
}

// TestLastUsed: GetAccessKeyLastUsed shows a use only after the usage
// delay, its date rounded down to the minute; Keys shows the exact time.
func TestLastUsed(t *testing.T) {
	const delay = 4 * time.Hour
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now, Region: "eu-west-1", UsageDelay: delay})
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
	neverUsed := func(when string) {
		t.Helper()
		if lu := lastUsed(); lu.LastUsedDate != nil || *lu.ServiceName != "N/A" || *lu.Region != "N/A" {
			t.Fatalf("%s: %v %s %s, want never used", when, lu.LastUsedDate, *lu.ServiceName, *lu.Region)
		}
	}
	neverUsed("before any use")

	clk.Advance(time.Minute + 37*time.Second)
	usedAt := clk.Now().UTC()
	c := sdk(t, s, ids[0], ids[1], config.WithRegion("eu-west-1"))
	must(c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}))(t)
	if k := s.Keys("alice")[0]; !k.LastUsed.Equal(clk.Now()) || k.LastUsedService != "sts" {
		t.Fatalf("Keys = %+v, want the exact use", k)
	}
	clk.Advance(delay/2 - time.Second)
	neverUsed("before half the usage delay")
	clk.Advance(delay/2 + time.Second)
	lu := lastUsed()
	if want := usedAt.Truncate(time.Minute); lu.LastUsedDate == nil || !lu.LastUsedDate.Equal(want) || *lu.ServiceName != "sts" || *lu.Region != "eu-west-1" {
		t.Fatalf("after STS: %v %s %s, want %v (rounded down to the minute) sts eu-west-1", lu.LastUsedDate, *lu.ServiceName, *lu.Region, want)
	}
	if lu.LastUsedDate.Second() != 0 {
		t.Fatalf("LastUsedDate %v has seconds", lu.LastUsedDate)
	}

	first := *lu.LastUsedDate
	_, err := c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("none")})
	wantErr(t, err, "ResourceNotFoundException", 400) // authenticated, so the key was used
	if lu := lastUsed(); !lu.LastUsedDate.Equal(first) || *lu.ServiceName != "sts" {
		t.Fatalf("the Secrets Manager use shows at once: %v %s", lu.LastUsedDate, *lu.ServiceName)
	}
	clk.Advance(delay)
	if lu := lastUsed(); *lu.ServiceName != "secretsmanager" || !lu.LastUsedDate.After(first) {
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
	// The delay is off: the ledger's times are under test, not the delay.
	s := start(t, awsemu.Options{Now: clk.Now, ConsistencyDelay: awsemu.Immediate})
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

// TestSecretsManagerOmitsEmptyLists: a version without staging labels has
// no VersionStages at all (the SDK yields nil, not an empty list), in every
// response that describes it.
func TestSecretsManagerOmitsEmptyLists(t *testing.T) {
	s := start(t, awsemu.Options{})
	sm := admin(t, s).sm
	ctx := t.Context()
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("e")}))(t)
	if out := must(sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("e")}))(t); out.Versions != nil {
		t.Fatalf("Versions of a secret without versions = %#v, want nil", out.Versions)
	}
	if out := must(sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("e")}))(t); out.VersionIdsToStages != nil {
		t.Fatalf("VersionIdsToStages of a secret without versions = %#v, want nil", out.VersionIdsToStages)
	}
	const tok = "11111111-2222-4333-8444-555555555555"
	must(sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("e"), SecretString: aws.String("v1")}))(t)
	must(sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("e"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tok), VersionStages: []string{"AWSPENDING"}}))(t)
	must(sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("e"), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tok)}))(t)
	again := must(sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("e"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tok), VersionStages: []string{"AWSPENDING"}}))(t)
	if again.VersionStages != nil {
		t.Fatalf("PutSecretValue of a version without labels: VersionStages = %#v, want nil", again.VersionStages)
	}
	byID := must(sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("e"), VersionId: aws.String(tok)}))(t)
	if byID.VersionStages != nil {
		t.Fatalf("GetSecretValue of a version without labels: VersionStages = %#v, want nil", byID.VersionStages)
	}
	list := must(sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("e"), IncludeDeprecated: aws.Bool(true)}))(t)
	for _, v := range list.Versions {
		if *v.VersionId == tok && v.VersionStages != nil {
			t.Fatalf("ListSecretVersionIds: VersionStages of a version without labels = %#v, want nil", v.VersionStages)
		}
	}
}

// TestSecretsManagerInputLimits: the documented constraints, with AWS's
// error codes.
func TestSecretsManagerInputLimits(t *testing.T) {
	s := start(t, awsemu.Options{})
	sm := admin(t, s).sm
	ctx := t.Context()
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/x"), SecretString: aws.String("v")}))(t)
	put := func(in *secretsmanager.PutSecretValueInput) error {
		in.SecretId = aws.String("app/x")
		_, err := sm.PutSecretValue(ctx, in)
		return err
	}
	labels := func(n int) []string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprintf("L%d", i))
		}
		return l
	}
	for _, tt := range []struct {
		name string
		err  func() error
		code string
	}{
		{"SecretString of 65,537 bytes", func() error {
			return put(&secretsmanager.PutSecretValueInput{SecretString: aws.String(strings.Repeat("a", 65537))})
		}, "ValidationException"},
		{"SecretBinary of 65,537 bytes", func() error {
			return put(&secretsmanager.PutSecretValueInput{SecretBinary: bytes.Repeat([]byte{1}, 65537)})
		}, "ValidationException"},
		{"empty SecretString", func() error { return put(&secretsmanager.PutSecretValueInput{SecretString: aws.String("")}) }, "InvalidRequestException"},
		{"21 staging labels in one call", func() error {
			return put(&secretsmanager.PutSecretValueInput{SecretString: aws.String("v"), VersionStages: labels(21)})
		}, "ValidationException"},
		{"a staging label of 257 characters", func() error {
			return put(&secretsmanager.PutSecretValueInput{SecretString: aws.String("v"), VersionStages: []string{strings.Repeat("L", 257)}})
		}, "ValidationException"},
		{"invalid secret name", func() error {
			_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db password!")})
			return err
		}, "ValidationException"},
		{"secret name of 513 characters", func() error {
			_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(strings.Repeat("n", 513))})
			return err
		}, "ValidationException"},
	} {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.err(), tt.code, 400) })
	}
	// The limits themselves are allowed.
	must(0, put(&secretsmanager.PutSecretValueInput{SecretString: aws.String(strings.Repeat("a", 65536))}))(t)
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(strings.Repeat("n", 511) + "@")}))(t)
	// 20 labels across the secret's versions, then one more is refused.
	must(0, put(&secretsmanager.PutSecretValueInput{SecretString: aws.String("w"), VersionStages: labels(18)}))(t) // + AWSCURRENT, AWSPREVIOUS
	wantErr(t, put(&secretsmanager.PutSecretValueInput{SecretString: aws.String("x"), VersionStages: []string{"ONE-TOO-MANY"}}), "LimitExceededException", 400)
}

// TestSecretsManagerDeletion: a secret scheduled for deletion refuses
// reads and writes with InvalidRequestException until restored, is
// described with its DeletedDate, and is gone after the recovery window.
func TestSecretsManagerDeletion(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now})
	sm := admin(t, s).sm
	ctx := t.Context()
	id := aws.String("d")
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("v")}))(t)
	_, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, RecoveryWindowInDays: aws.Int64(3)})
	wantErr(t, err, "InvalidParameterException", 400)
	del := must(sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, RecoveryWindowInDays: aws.Int64(7)}))(t)
	if want := clk.Now().Add(7 * 24 * time.Hour); del.DeletionDate == nil || del.DeletionDate.Sub(want).Abs() > time.Second {
		t.Fatalf("DeletionDate %v, want %v", del.DeletionDate, want)
	}
	if d := must(sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id}))(t); d.DeletedDate == nil {
		t.Fatal("DescribeSecret shows no DeletedDate")
	}
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id})
	wantErr(t, err, "InvalidRequestException", 400)
	_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("w")})
	wantErr(t, err, "InvalidRequestException", 400)
	_, err = sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String("X"), MoveToVersionId: aws.String("none")})
	wantErr(t, err, "InvalidRequestException", 400)
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id})
	wantErr(t, err, "InvalidRequestException", 400)

	must(sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: id}))(t)
	if got := must(sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id}))(t); *got.SecretString != "v" {
		t.Fatalf("restored secret holds %q", *got.SecretString)
	}
	must(sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, RecoveryWindowInDays: aws.Int64(7)}))(t)
	clk.Advance(7 * 24 * time.Hour)
	_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	wantErr(t, err, "ResourceNotFoundException", 400)
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id}))(t)
	must(sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, ForceDeleteWithoutRecovery: aws.Bool(true)}))(t)
	_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	wantErr(t, err, "ResourceNotFoundException", 400)
}

// TestSecretsManagerVersionQuota: a secret holds at most 100 versions;
// unlabelled versions are removed to make room only once 24 hours old.
func TestSecretsManagerVersionQuota(t *testing.T) {
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now})
	sm := admin(t, s).sm
	ctx := t.Context()
	id := aws.String("q")
	must(sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("v0")}))(t)
	for i := 1; i < 100; i++ {
		must(sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String(fmt.Sprintf("v%d", i))}))(t)
	}
	_, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("v100")})
	wantErr(t, err, "LimitExceededException", 400)
	clk.Advance(24 * time.Hour)
	must(sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("v100")}))(t)
	list := must(sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: id, IncludeDeprecated: aws.Bool(true)}))(t)
	if len(list.Versions) != 100 {
		t.Fatalf("%d versions after making room, want 100", len(list.Versions))
	}
	prev := must(sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id, VersionStage: aws.String("AWSPREVIOUS")}))(t)
	if *prev.SecretString != "v99" {
		t.Fatalf("AWSPREVIOUS holds %s, want v99 (labelled versions are kept)", *prev.SecretString)
	}
}
