package aws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes/awssts"
	"github.com/rekeyhq/rekey/providers/awsiam"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/testenv/awsemu"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

// awsCLI runs Debian's aws command line against the emulator with a key.
func awsCLI(t *testing.T, s *awsemu.Server, id, sec string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(awstest.CLI(t), append(args, "--endpoint-url", s.URL(), "--output", "json")...)
	cmd.Env = awstest.CLIEnv(t, s, id, sec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("aws %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func secretValue(t *testing.T, s *awsemu.Server, id, sec, secretID string) map[string]string {
	t.Helper()
	out, err := awsCLI(t, s, id, sec, "secretsmanager", "get-secret-value", "--secret-id", secretID, "--version-stage", "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ SecretString string }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("get-secret-value output %q: %v", out, err)
	}
	var fields map[string]string
	if err := json.Unmarshal([]byte(resp.SecretString), &fields); err != nil {
		t.Fatalf("AWSCURRENT is not a JSON object: %v", err)
	}
	return fields
}

func callerIdentity(t *testing.T, s *awsemu.Server, id, sec string) (string, error) {
	t.Helper()
	out, err := awsCLI(t, s, id, sec, "sts", "get-caller-identity")
	if err != nil {
		return "", err
	}
	var resp struct{ Arn string }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return "", fmt.Errorf("get-caller-identity output %q: %v", out, err)
	}
	return resp.Arn, nil
}

// TestRotationEndToEnd drives the AWS plugins through one rotation the way
// the engine does (create, stage, test, promote, deactivate, revoke), with
// the emulator's consistency delay on, and checks the outcome with a client
// nobody here wrote: Debian's aws command line.
func TestRotationEndToEnd(t *testing.T) {
	t.Parallel()
	awstest.CLI(t)
	ctx := context.Background()
	env := awstest.Start(t, 5*time.Second)
	arn := env.Server.CreateUser("svc-payments")
	oldID, oldSecret, err := env.Server.CreateAccessKeyFor("svc-payments")
	if err != nil {
		t.Fatal(err)
	}
	adminID, adminSecret := env.Server.AdminKey()
	sm, err := env.Conn.SecretsManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldJSON, _ := json.Marshal(map[string]string{"access_key_id": oldID, "secret_access_key": oldSecret})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("payments/aws"), SecretString: aws.String(string(oldJSON))}); err != nil {
		t.Fatal(err)
	}

	prov := awsiam.NewProvider(env.Conn, "svc-payments", 0)
	sink := awssm.NewSink(env.Conn, awssm.Options{SecretID: "payments/aws"})
	probe := awssts.NewProbe(awssts.Options{Conn: env.Conn, ExpectARN: arn})
	rot := plugin.Rotation{ID: "0d5e1a3b-7c4f-4e2a-9b6d-1f0e2d3c4b5a", Policy: "payments-aws", StartedAt: env.Clock.Now()}

	if keys, err := prov.List(ctx); err != nil || len(keys) != 1 || keys[0].ID != oldID {
		t.Fatalf("List before = %+v, %v", keys, err)
	}
	newKey, err := prov.Create(ctx, rot)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	newID, newSecret := newKey.Value["access_key_id"].Reveal(), newKey.Value["secret_access_key"].Reveal()
	var errs []error

	st := sinks.State{}
	if st.Prev, err = sink.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Staged, err = sink.Stage(ctx, rot, newKey, st); err != nil {
		t.Fatalf("stage: %v", err)
	}
	if got := secretValue(t, env.Server, adminID, adminSecret, "payments/aws"); got["access_key_id"] != oldID {
		t.Fatalf("dependents are served %s before promotion", secret.Mask(got["access_key_id"]))
	}

	attempts := 0
	for {
		attempts++
		err := probe.Check(ctx, newKey)
		if err == nil {
			break
		}
		errs = append(errs, err)
		if plugin.IsPermanent(err) || attempts > 10 {
			t.Fatalf("probe attempt %d: %v", attempts, err)
		}
		env.Clock.Advance(time.Second) // the engine's backoff, on the emulator's clock
	}
	if attempts < 4 {
		t.Errorf("the probe passed at attempt %d, 3s after creation, before the emulator's consistency delay (2.5s to 5s)", attempts)
	}

	if st.Promoted, err = sink.Promote(ctx, rot, newKey, st); err != nil {
		t.Fatalf("promote: %v", err)
	}
	served := secretValue(t, env.Server, adminID, adminSecret, "payments/aws")
	if served["access_key_id"] != newID || served["secret_access_key"] != newSecret {
		t.Fatalf("AWSCURRENT read with the aws CLI holds %s, want the new key %s", secret.Mask(served["access_key_id"]), secret.Mask(newID))
	}
	if got, err := callerIdentity(t, env.Server, served["access_key_id"], served["secret_access_key"]); err != nil || got != arn {
		t.Fatalf("aws sts get-caller-identity with the served key = %q, %v", got, err)
	}

	// IAM is eventually consistent: the deactivated key keeps working for a
	// while, and is refused once the provider's propagation allowance, the
	// time the engine's soak waits before it trusts a probe, has passed.
	if err := prov.Deactivate(ctx, oldID); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if _, err := callerIdentity(t, env.Server, oldID, oldSecret); err != nil {
		t.Fatalf("the old key right after its deactivation, before IAM propagated it: %v", err)
	}
	env.Clock.Advance(prov.PropagationDelay())
	if _, err := callerIdentity(t, env.Server, oldID, oldSecret); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("the deactivated old key still works after the propagation allowance %v: %v", prov.PropagationDelay(), err)
	}
	if err := prov.Activate(ctx, oldID); err != nil {
		t.Fatalf("activate: %v", err)
	}
	env.Clock.Advance(prov.PropagationDelay())
	if err := prov.Delete(ctx, oldID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := callerIdentity(t, env.Server, oldID, oldSecret); err != nil {
		t.Fatalf("the old key right after its deletion, before IAM propagated it: %v", err)
	}
	env.Clock.Advance(prov.PropagationDelay())
	if _, err := callerIdentity(t, env.Server, oldID, oldSecret); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("the deleted old key still works after the propagation allowance: %v", err)
	}
	if got, err := callerIdentity(t, env.Server, newID, newSecret); err != nil || got != arn {
		t.Fatalf("the new key after the old one's deletion = %q, %v", got, err)
	}
	if keys, err := prov.List(ctx); err != nil || len(keys) != 1 || keys[0].ID != newID || keys[0].Status != plugin.KeyActive {
		t.Fatalf("List after = %+v, %v", keys, err)
	}

	for _, err := range errs {
		for _, leak := range []string{newSecret, oldSecret, newID} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("error leaks a secret or an unmasked key id: %v", err)
			}
		}
	}
}

func realAWS(t testing.TB) (conn *awsconn.Conn, user, secretID string) {
	t.Helper()
	if os.Getenv("REKEY_TEST_REAL_AWS") != "1" {
		t.Skip("runs against a real AWS account only when REKEY_TEST_REAL_AWS=1, with credentials in the standard chain, " +
			"AWS_REGION, REKEY_TEST_AWS_USER (an IAM user with at most one access key) and REKEY_TEST_AWS_SECRET_ID (an existing secret)")
	}
	user, secretID = os.Getenv("REKEY_TEST_AWS_USER"), os.Getenv("REKEY_TEST_AWS_SECRET_ID")
	if user == "" || secretID == "" || os.Getenv("AWS_REGION") == "" {
		t.Fatal("REKEY_TEST_REAL_AWS=1 needs REKEY_TEST_AWS_USER, REKEY_TEST_AWS_SECRET_ID and AWS_REGION")
	}
	return awsconn.New(awsconn.Options{Name: "real"}), user, secretID
}

// TestRealAWS runs the plugins against a real account and leaves it as it
// found it: the new key is created, staged, probed, promoted, then rolled
// back, deactivated, re-activated and deleted.
func TestRealAWS(t *testing.T) {
	conn, user, secretID := realAWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	prov := awsiam.NewProvider(conn, user, 0)
	sink := awssm.NewSink(conn, awssm.Options{SecretID: secretID})
	probe := awssts.NewProbe(awssts.Options{Conn: conn})
	rot := plugin.Rotation{ID: fmt.Sprintf("rekey-real-aws-test-%d-0000000000000", time.Now().UnixNano()), Policy: "real"}

	before, err := prov.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) >= awsiam.MaxKeys {
		t.Fatalf("user %s already has %d keys; the test needs room for one more", user, len(before))
	}
	key, err := prov.Create(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prov.Delete(context.Background(), key.ID); err != nil {
			t.Errorf("deleting the test key %s: %v", secret.Mask(key.ID), err)
		}
	})
	st := sinks.State{}
	if st.Prev, err = sink.Current(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Staged, err = sink.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sink.Rollback(context.Background(), rot, st); err != nil {
			t.Errorf("rolling back %s: %v", secretID, err)
		}
	})
	for delay := time.Second; ; delay = min(2*delay, 15*time.Second) {
		err := probe.Check(ctx, key)
		if err == nil {
			break
		}
		if plugin.IsPermanent(err) || ctx.Err() != nil {
			t.Fatalf("probe: %v", err)
		}
		time.Sleep(delay)
	}
	if st.Promoted, err = sink.Promote(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	if err := sink.Rollback(ctx, rot, st); err != nil {
		t.Fatal(err)
	}
	if cur, err := sink.Current(ctx); err != nil || cur != st.Prev {
		t.Fatalf("Current after Rollback = %q, %v; want %q", cur, err, st.Prev)
	}
	if err := prov.Deactivate(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := prov.Activate(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.LastUsed(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
}

// benchEnv is an emulator with a user and a secret for the benchmarks.
func benchEnv(b *testing.B) (*awstest.Env, *awsiam.Provider, *awssm.Sink) {
	env := awstest.Start(b, 0)
	env.Server.CreateUser("svc")
	sm, err := env.Conn.SecretsManager(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("bench"), SecretString: aws.String("{}")}); err != nil {
		b.Fatal(err)
	}
	return env, awsiam.NewProvider(env.Conn, "svc", 0), awssm.NewSink(env.Conn, awssm.Options{SecretID: "bench"})
}

func benchKey() plugin.Key {
	return plugin.Key{ID: "AKIABENCHBENCHBENCH0", Value: secret.Fields{"access_key_id": secret.New("AKIABENCHBENCHBENCH0"), "secret_access_key": secret.New("bench-secret")}}
}

func BenchmarkProviderCreate(b *testing.B) {
	env, prov, _ := benchEnv(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		k, err := prov.Create(ctx, plugin.Rotation{ID: fmt.Sprint(i)})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := prov.Delete(ctx, k.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	_ = env
}

func BenchmarkSinkStage(b *testing.B) {
	_, _, sink := benchEnv(b)
	ctx := context.Background()
	key := benchKey()
	prev, err := sink.Current(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rot := plugin.Rotation{ID: fmt.Sprintf("bench-stage-%d", i)}
		if _, err := sink.Stage(ctx, rot, key, sinks.State{Prev: prev}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := sink.Rollback(ctx, rot, sinks.State{Prev: prev}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkSinkPromote(b *testing.B) {
	_, _, sink := benchEnv(b)
	ctx := context.Background()
	key := benchKey()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rot := plugin.Rotation{ID: fmt.Sprintf("bench-promote-%d", i)}
		st := sinks.State{}
		var err error
		if st.Prev, err = sink.Current(ctx); err != nil {
			b.Fatal(err)
		}
		if st.Staged, err = sink.Stage(ctx, rot, key, st); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := sink.Promote(ctx, rot, key, st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProbeCheck(b *testing.B) {
	env, _, _ := benchEnv(b)
	id, sec, err := env.Server.CreateAccessKeyFor("svc")
	if err != nil {
		b.Fatal(err)
	}
	probe := awssts.NewProbe(awssts.Options{Conn: env.Conn})
	key := plugin.Key{ID: id, Value: secret.Fields{"access_key_id": secret.New(id), "secret_access_key": secret.New(sec)}}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := probe.Check(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
