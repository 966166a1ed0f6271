package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/awsemu"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

// awsEnv is an emulator on the real clock (the engine's clock: orphans are
// recognised by comparing key creation times with the journaled intent),
// a profile holding its admin key, and admin clients for the assertions.
type awsEnv struct {
	h       *harness
	srv     *awsemu.Server
	profile string
	admin   *awsconn.Conn
	sm      *secretsmanager.Client
}

// startAWS starts an emulator on the real clock. consistencyDelay bounds
// how late IAM key state changes take effect: 0 is
// the emulator's default (on, as on AWS, with a seeded random spread),
// awsemu.Immediate turns it off. The policies' aws_iam provider is given
// the same bound as its propagation_delay.
func startAWS(h *harness, consistencyDelay time.Duration) *awsEnv {
	h.t.Helper()
	s, err := awsemu.Start(awsemu.Options{Region: awstest.Region, ConsistencyDelay: consistencyDelay})
	if err != nil {
		h.t.Fatalf("starting the AWS emulator: %v", err)
	}
	h.t.Logf("AWS emulator seed %d (%s=%d repeats its delays)", s.Seed(), awsemu.SeedEnv, s.Seed())
	h.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			h.t.Errorf("closing the AWS emulator: %v", err)
		}
	})
	id, sec := s.AdminKey()
	h.secret("the AWS admin secret access key", sec)
	a := &awsEnv{h: h, srv: s, profile: addAWSProfile(h.t, id, sec), admin: awstest.Conn(s, "admin", id, sec)}
	a.sm, err = a.admin.SecretsManager(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// propagation is the emulator's consistency delay as a policy duration,
// the aws_iam provider's propagation_delay.
func (a *awsEnv) propagation() string {
	return fmt.Sprintf("%dms", max(a.srv.Options().ConsistencyDelay, 0).Milliseconds())
}

// refused polls sts:GetCallerIdentity with a key until IAM refuses it,
// for at most the emulator's consistency delay (and some slack for a
// loaded machine): a deactivated or deleted key keeps working until then.
func (a *awsEnv) refused(ctx context.Context, id, sec string) error {
	return a.pollKey(ctx, id, sec, false)
}

// accepted polls until IAM accepts the key (after a creation or a
// re-activation).
func (a *awsEnv) accepted(ctx context.Context, id, sec string) error {
	return a.pollKey(ctx, id, sec, true)
}

func (a *awsEnv) pollKey(ctx context.Context, id, sec string, want bool) error {
	deadline := time.Now().Add(max(a.srv.Options().ConsistencyDelay, 0) + 10*time.Second)
	for {
		_, err := a.callerARN(ctx, id, sec)
		switch {
		case want && err == nil:
			return nil
		case !want && err != nil:
			if awsconn.ErrorCode(err) != "InvalidClientTokenId" {
				return fmt.Errorf("sts:GetCallerIdentity with key %s: %v, want InvalidClientTokenId", secret.Mask(id), err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("key %s: accepted %v, want %v, beyond the emulator's consistency delay: %v", secret.Mask(id), !want, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// block declares `aws "emu"` for the policies.
func (a *awsEnv) block() string {
	return fmt.Sprintf("aws \"emu\" {\n  region   = %q\n  profile  = %q\n  endpoint = %q\n}\n", awstest.Region, a.profile, a.srv.URL())
}

// seedUser creates an IAM user with one access key, the key in use before
// rekey manages it.
func (a *awsEnv) seedUser(user string) (arn, id, sec string) {
	a.h.t.Helper()
	arn = a.srv.CreateUser(user)
	id, sec, err := a.srv.CreateAccessKeyFor(user)
	if err != nil {
		a.h.t.Fatal(err)
	}
	a.h.secret("the seed key's secret access key", sec)
	a.h.keyID("the seed access key id", id)
	return arn, id, sec
}

func keyJSON(id, sec string) string {
	b, _ := json.Marshal(map[string]string{"access_key_id": id, "secret_access_key": sec})
	return string(b)
}

// createSecret creates a Secrets Manager secret holding a key and returns
// its first version id.
func (a *awsEnv) createSecret(name, id, sec string) string {
	a.h.t.Helper()
	out, err := a.sm.CreateSecret(a.h.ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(keyJSON(id, sec))})
	if err != nil {
		a.h.t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// current returns the version labelled AWSCURRENT and its key.
func (a *awsEnv) current(ctx context.Context, name string) (version, id, sec string, err error) {
	return a.byStage(ctx, name, "AWSCURRENT")
}

func (a *awsEnv) byStage(ctx context.Context, name, stage string) (version, id, sec string, err error) {
	out, err := a.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String(stage)})
	if err != nil {
		return "", "", "", err
	}
	var f map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &f); err != nil {
		return "", "", "", fmt.Errorf("%s of %s is not a JSON object", stage, name)
	}
	a.h.secret("a secret access key read from Secrets Manager", f["secret_access_key"])
	return aws.ToString(out.VersionId), f["access_key_id"], f["secret_access_key"], nil
}

// stages returns the staging labels of every version of a secret.
func (a *awsEnv) stages(name string) map[string][]string {
	a.h.t.Helper()
	out, err := a.sm.DescribeSecret(a.h.ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		a.h.t.Fatal(err)
	}
	return out.VersionIdsToStages
}

// holder returns the version holding a staging label, or "".
func holder(stages map[string][]string, label string) string {
	for v, ls := range stages {
		for _, l := range ls {
			if l == label {
				return v
			}
		}
	}
	return ""
}

// callerARN calls sts:GetCallerIdentity signed with the given key (one
// attempt) and returns the caller's ARN.
func (a *awsEnv) callerARN(ctx context.Context, id, sec string) (string, error) {
	c := a.admin.STSWithCredentials(credentials.NewStaticCredentialsProvider(id, sec, ""), 1)
	out, err := c.GetCallerIdentity(ctx, nil)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Arn), nil
}

// ledgerSince returns the calls after the first n.
func (a *awsEnv) ledgerSince(n int) []awsemu.Call {
	return a.srv.Ledger()[n:]
}

// awsDependent is an application that uses the IAM key rekey rotates: on
// each GET it calls sts:GetCallerIdentity with its credential, which it
// reads from the secret's AWSCURRENT on every request, or, when it caches,
// only at start and when told to reload (POST /reload), like a service
// that reads its configuration at start and on SIGHUP.
type awsDependent struct {
	a        *awsEnv
	secretID string
	arn      string
	cache    bool
	srv      *httptest.Server
	// fail makes the health check answer 500 while the dependent holds a
	// key other than failUnless (a dependent that breaks with the new key).
	fail       atomic.Bool
	failUnless string

	mu      sync.Mutex
	id, sec string // the cached credential
	checks  []dependentCheck
	reloads int
}

type dependentCheck struct {
	keyID string
	ok    bool
}

func newAWSDependent(a *awsEnv, secretID, arn string, cache bool) *awsDependent {
	d := &awsDependent{a: a, secretID: secretID, arn: arn, cache: cache}
	if cache {
		if err := d.load(a.h.ctx); err != nil {
			a.h.t.Fatalf("the dependent cannot read its credential: %v", err)
		}
	}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	a.h.t.Cleanup(d.srv.Close)
	return d
}

func (d *awsDependent) load(ctx context.Context) error {
	_, id, sec, err := d.a.current(ctx, d.secretID)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.id, d.sec = id, sec
	d.mu.Unlock()
	return nil
}

func (d *awsDependent) healthURL() string { return d.srv.URL + "/healthz" }
func (d *awsDependent) reloadURL() string { return d.srv.URL + "/reload" }

func (d *awsDependent) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/reload" {
		if err := d.load(r.Context()); err != nil {
			http.Error(w, "reading the credential failed", http.StatusServiceUnavailable)
			return
		}
		d.mu.Lock()
		d.reloads++
		d.mu.Unlock()
		return
	}
	if !d.cache {
		if err := d.load(r.Context()); err != nil {
			http.Error(w, "reading the credential failed", http.StatusServiceUnavailable)
			return
		}
	}
	if d.fail.Load() {
		d.mu.Lock()
		held := d.id
		d.mu.Unlock()
		if held != d.failUnless {
			http.Error(w, "the dependent fails with this key (test)", http.StatusInternalServerError)
			return
		}
	}
	ok := d.check(r.Context()) == nil
	if !ok {
		http.Error(w, "AWS refuses the credential", http.StatusBadGateway)
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// check uses the dependent's credential once and records the outcome.
func (d *awsDependent) check(ctx context.Context) error {
	d.mu.Lock()
	id, sec := d.id, d.sec
	d.mu.Unlock()
	arn, err := d.a.callerARN(ctx, id, sec)
	if err == nil && arn != d.arn {
		err = fmt.Errorf("the credential belongs to %s, not %s", arn, d.arn)
	}
	d.mu.Lock()
	d.checks = append(d.checks, dependentCheck{keyID: id, ok: err == nil})
	d.mu.Unlock()
	return err
}

func (d *awsDependent) history() (checks []dependentCheck, reloads int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dependentCheck(nil), d.checks...), d.reloads
}
