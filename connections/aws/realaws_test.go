package aws_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes/awssts"
	"github.com/rekeyhq/rekey/providers/awsiam"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
)

// The tests below check, against a real account (REKEY_TEST_REAL_AWS=1),
// each AWS behaviour the emulator models after issue 19: late propagation
// of key state changes, last use to the minute and late, omitted empty
// lists, input limits, deletion scheduling and the version quota. They
// log what they measure, so that the emulator's defaults can be compared.

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestRealAWSKeyPropagationAndLastUse: a deactivated key keeps working for
// a while and is refused within the provider's propagation allowance; a
// re-activated key works again; a deleted key is refused within the
// allowance; the last use shows late and rounded down to the minute.
func TestRealAWSKeyPropagationAndLastUse(t *testing.T) {
	conn, user, _ := realAWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	prov := awsiam.NewProvider(conn, user, 0)
	probe := awssts.NewProbe(awssts.Options{Conn: conn})
	before, err := prov.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) >= awsiam.MaxKeys {
		t.Fatalf("user %s already has %d keys; the test needs room for one more", user, len(before))
	}
	key, err := prov.Create(ctx, plugin.Rotation{ID: "rekey-real-aws-propagation", Policy: "real"})
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			if err := prov.Delete(context.Background(), key.ID); err != nil {
				t.Errorf("deleting the test key %s: %v", secret.Mask(key.ID), err)
			}
		}
	})
	// until polls the key with sts:GetCallerIdentity until ok(err) and
	// returns how long that took.
	until := func(what string, ok func(error) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			err := probe.Check(ctx, key)
			if ok(err) {
				d := time.Since(start)
				t.Logf("%s after %v", what, d.Round(100*time.Millisecond))
				return d
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: not within the test's time: %v", what, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	accepted := func(err error) bool { return err == nil }
	refused := func(err error) bool { return awsconn.ErrorCode(err) == "InvalidClientTokenId" }

	until("new key accepted", accepted)
	usedAt := time.Now()

	if err := prov.Deactivate(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if d := until("deactivated key refused", refused); d > prov.PropagationDelay() {
		t.Errorf("the deactivation took %v to take effect, longer than the propagation allowance %v", d, prov.PropagationDelay())
	}
	if err := prov.Activate(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	until("re-activated key accepted", accepted)

	// GetAccessKeyLastUsed: late, and to the minute. LastUsed returns the
	// end of the reported minute.
	start := time.Now()
	for {
		lu, err := prov.LastUsed(ctx, key.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !lu.IsZero() {
			reported := lu.Add(time.Nanosecond - awsiam.LastUsedResolution)
			t.Logf("last use shown after %v: %s", time.Since(start).Round(time.Second), reported.UTC().Format(time.RFC3339Nano))
			if reported.Second() != 0 || reported.Nanosecond() != 0 {
				t.Errorf("IAM reported the last use as %s, not rounded to the minute; LastUsedResolution is wrong", reported.Format(time.RFC3339Nano))
			}
			if lu.Before(usedAt.Add(-time.Minute)) {
				t.Errorf("LastUsed %v is before the use at %v", lu, usedAt)
			}
			break
		}
		if time.Since(start) > 5*time.Minute {
			t.Logf("the last use did not show within 5 minutes (AWS: usually within 4 hours); not checked")
			break
		}
		time.Sleep(15 * time.Second)
	}

	if err := prov.Delete(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	deleted = true
	if d := until("deleted key refused", refused); d > prov.PropagationDelay() {
		t.Errorf("the deletion took %v to take effect, longer than the propagation allowance %v", d, prov.PropagationDelay())
	}
}

// TestRealAWSSecretsManagerRules uses a scratch secret, force-deleted at
// the end; the identity needs secretsmanager:CreateSecret, DeleteSecret,
// RestoreSecret, PutSecretValue, UpdateSecretVersionStage, GetSecretValue,
// DescribeSecret and ListSecretVersionIds on rekey-test/*.
func TestRealAWSSecretsManagerRules(t *testing.T) {
	conn, _, _ := realAWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sm, err := conn.SecretsManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("rekey-test/issue19-%d", time.Now().UnixNano())
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"v":"0"}`)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sm.RestoreSecret(context.Background(), &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)})
		if _, err := sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
			t.Errorf("deleting the scratch secret %s: %v", name, err)
		}
	})
	id := aws.String(name)
	wantCode := func(what string, err error, code string) {
		t.Helper()
		if got := apiCode(err); got != code {
			t.Errorf("%s: error %v (code %q), want %s", what, err, got, code)
		}
	}

	t.Run("input limits", func(t *testing.T) {
		_, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String(strings.Repeat("a", 65537))})
		wantCode("SecretString of 65,537 bytes", err, "ValidationException")
		_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("")})
		wantCode("empty SecretString", err, "InvalidRequestException")
		var labels []string
		for i := range 21 {
			labels = append(labels, fmt.Sprintf("L%d", i))
		}
		_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("x"), VersionStages: labels})
		wantCode("21 staging labels", err, "ValidationException")
		_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("rekey-test/invalid name!")})
		wantCode("invalid secret name", err, "ValidationException")
	})

	t.Run("empty lists are omitted", func(t *testing.T) {
		const tok = "11111111-2222-4333-8444-555555555555"
		if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("p"), ClientRequestToken: aws.String(tok), VersionStages: []string{"AWSPENDING"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tok)}); err != nil {
			t.Fatal(err)
		}
		out, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("p"), ClientRequestToken: aws.String(tok), VersionStages: []string{"AWSPENDING"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("PutSecretValue of a labelless version: VersionStages %#v", out.VersionStages)
		if out.VersionStages != nil {
			t.Errorf("VersionStages = %#v; the emulator omits it (nil)", out.VersionStages)
		}
		// The sink relabels it either way.
		sink := awssm.NewSink(conn, awssm.Options{SecretID: name})
		cur, err := sink.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rot := plugin.Rotation{ID: tok, Policy: "real"}
		k := plugin.Key{ID: "k", Value: secret.Fields{"v": secret.New("1")}}
		st := sinks.State{Prev: cur}
		if _, err := sink.Stage(ctx, rot, k, st); err != nil {
			t.Fatal(err)
		}
		d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
		if err != nil || len(d.VersionIdsToStages[tok]) == 0 {
			t.Errorf("after Stage, version %s has labels %v (%v), want AWSPENDING", tok, d.VersionIdsToStages[tok], err)
		}
		if err := sink.Rollback(ctx, rot, st); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("scheduled for deletion", func(t *testing.T) {
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id, RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id})
		wantCode("GetSecretValue", err, "InvalidRequestException")
		_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("x")})
		wantCode("PutSecretValue", err, "InvalidRequestException")
		if _, err := sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: id}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("100 versions", func(t *testing.T) {
		var err error
		n := 0
		for ; n < 110 && err == nil; n++ {
			_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String(fmt.Sprintf("q%d", n))})
		}
		t.Logf("PutSecretValue refused after %d new versions: %v", n, err)
		wantCode("the version over the quota", err, "LimitExceededException")
	})
}
