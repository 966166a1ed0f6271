package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/testenv/awstest"
)

const (
	rotID    = "6f1c2a4e-8b3d-4c5e-9f70-a1b2c3d4e5f6"
	oldValue = `{"access_key_id":"AKIAOLDOLDOLDOLDOLD0","secret_access_key":"old-secret"}`
)

func rotation(id string) plugin.Rotation {
	return plugin.Rotation{ID: id, Policy: "p", StartedAt: time.Now()}
}

func newKey(id, sec string) plugin.Key {
	return plugin.Key{ID: id, Value: secret.Fields{
		"access_key_id":     secret.New(id),
		"secret_access_key": secret.New(sec),
	}}
}

// fixture is an emulator with one secret and a client to inspect it.
type fixture struct {
	env  *awstest.Env
	sm   *secretsmanager.Client
	name string
	v0   string // the version current before any rotation, "" if none
}

func setup(t *testing.T, create bool) *fixture {
	t.Helper()
	env := awstest.Start(t, 0)
	sm, err := env.Conn.SecretsManager(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, sm: sm, name: "payments/aws"}
	if create {
		out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
			Name: aws.String(f.name), SecretString: aws.String(oldValue),
		})
		if err != nil {
			t.Fatal(err)
		}
		f.v0 = aws.ToString(out.VersionId)
	}
	return f
}

func (f *fixture) sink(opts awssm.Options) *awssm.Sink {
	if opts.SecretID == "" {
		opts.SecretID = f.name
	}
	return awssm.NewSink(f.env.Conn, opts)
}

// labels returns stage -> version id, read with DescribeSecret.
func (f *fixture) labels(t *testing.T) map[string]string {
	t.Helper()
	out, err := f.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(f.name)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for v, stages := range out.VersionIdsToStages {
		for _, st := range stages {
			m[st] = v
		}
	}
	return m
}

func (f *fixture) wantLabels(t *testing.T, want map[string]string) {
	t.Helper()
	got := f.labels(t)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("labels = %v, want %v", got, want)
	}
}

func (f *fixture) value(t *testing.T, stage string) string {
	t.Helper()
	out, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(f.name), VersionStage: aws.String(stage),
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SecretString)
}

func (f *fixture) versionCount(t *testing.T) int {
	t.Helper()
	out, err := f.sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{
		SecretId: aws.String(f.name), IncludeDeprecated: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Versions)
}

func TestStagePromoteIsAWSRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	if got, want := s.Location(), "aws_secretsmanager:test:payments/aws"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	cur, err := s.Current(ctx)
	if err != nil || string(cur) != f.v0 {
		t.Fatalf("Current() = %q, %v; want %q", cur, err, f.v0)
	}
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: cur}

	staged, err := s.Stage(ctx, rot, key, st)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if string(staged) != rotID {
		t.Errorf("staged version = %q, want the rotation id %q", staged, rotID)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": f.v0, "AWSPENDING": rotID})
	if got := f.value(t, "AWSCURRENT"); got != oldValue {
		t.Errorf("AWSCURRENT after Stage = %s, want the old value", got)
	}
	if got := f.value(t, "AWSPENDING"); got != `{"access_key_id":"AKIANEWNEWNEWNEWNEW1","secret_access_key":"new-secret"}` {
		t.Errorf("AWSPENDING = %s", got)
	}
	again, err := s.Stage(ctx, rot, key, st)
	if err != nil || again != staged {
		t.Fatalf("Stage again = %q, %v; want %q", again, err, staged)
	}
	if n := f.versionCount(t); n != 2 {
		t.Errorf("versions after staging twice = %d, want 2", n)
	}

	st.Staged = staged
	promoted, err := s.Promote(ctx, rot, key, st)
	if err != nil || promoted != staged {
		t.Fatalf("Promote = %q, %v; want %q", promoted, err, staged)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": rotID, "AWSPREVIOUS": f.v0})
	if got := f.value(t, "AWSPREVIOUS"); got != oldValue {
		t.Errorf("AWSPREVIOUS = %s, want the old value", got)
	}
	st.Promoted = promoted
	if again, err := s.Promote(ctx, rot, key, st); err != nil || again != promoted {
		t.Fatalf("Promote again = %q, %v", again, err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": rotID, "AWSPREVIOUS": f.v0})
	if again, err := s.Stage(ctx, rot, key, st); err != nil || again != staged {
		t.Fatalf("Stage after Promote = %q, %v", again, err)
	}
	if cur, err := s.Current(ctx); err != nil || cur != promoted {
		t.Fatalf("Current() after Promote = %q, %v", cur, err)
	}
	if n := f.versionCount(t); n != 2 {
		t.Errorf("versions = %d, want 2", n)
	}
}

func TestRollback(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		promote  bool
		journals bool // whether the engine journaled Staged/Promoted before the crash
	}{
		"after stage":   {false, true},
		"after promote": {true, true},
		"after promote, versions never journaled": {true, false},
		"after stage, versions never journaled":   {false, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := setup(t, true)
			s := f.sink(awssm.Options{})
			rot, key := rotation("short-id-7"), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
			st := sinks.State{Prev: sinks.Version(f.v0)}
			staged, err := s.Stage(ctx, rot, key, st)
			if err != nil {
				t.Fatal(err)
			}
			if string(staged) != awssm.ClientRequestToken("short-id-7") {
				t.Fatalf("staged %q, want the derived token", staged)
			}
			st.Staged = staged
			if tc.promote {
				if st.Promoted, err = s.Promote(ctx, rot, key, st); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.journals {
				st = sinks.State{Prev: st.Prev}
			}
			for i := range 2 {
				if err := s.Rollback(ctx, rot, st); err != nil {
					t.Fatalf("Rollback #%d: %v", i+1, err)
				}
				labels := f.labels(t)
				if labels["AWSCURRENT"] != f.v0 || labels["AWSPENDING"] != "" {
					t.Fatalf("labels after Rollback #%d = %v, want AWSCURRENT on %s and no AWSPENDING", i+1, labels, f.v0)
				}
				if got := f.value(t, "AWSCURRENT"); got != oldValue {
					t.Fatalf("AWSCURRENT after Rollback = %s", got)
				}
			}
			if n := f.versionCount(t); n != 2 {
				t.Errorf("versions = %d, want 2 (history is kept)", n)
			}
		})
	}
}

func TestStageAfterRollbackOfTheSameRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: sinks.Version(f.v0)}
	if _, err := s.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(ctx, rot, st); err != nil {
		t.Fatal(err)
	}
	// Same rotation, same value: the labelless version gets AWSPENDING back.
	if v, err := s.Stage(ctx, rot, key, st); err != nil || string(v) != rotID {
		t.Fatalf("Stage after Rollback = %q, %v", v, err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": f.v0, "AWSPENDING": rotID})
	if err := s.Rollback(ctx, rot, st); err != nil {
		t.Fatal(err)
	}
	// Same rotation, another value: refused, the version is immutable.
	other := newKey("AKIAOTHEROTHEROTHER2", "canary-other-secret")
	_, err := s.Stage(ctx, rot, other, st)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "already holds another value") {
		t.Fatalf("Stage of another value under the same rotation = %v, want a permanent refusal", err)
	}
	if strings.Contains(err.Error(), "canary-other-secret") {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func TestForeignPendingIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	out, err := f.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.name), SecretString: aws.String(`{"x":"y"}`), VersionStages: []string{"AWSPENDING"},
	})
	if err != nil {
		t.Fatal(err)
	}
	foreign := aws.ToString(out.VersionId)
	s := f.sink(awssm.Options{})
	_, err = s.Stage(ctx, rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret"), sinks.State{Prev: sinks.Version(f.v0)})
	if err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("Stage with a foreign AWSPENDING = %v, want a permanent error", err)
	}
	want := "aws secretsmanager update-secret-version-stage --secret-id payments/aws --version-stage AWSPENDING --remove-from-version-id " + foreign
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say how to clear the label (%s)", err, want)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": f.v0, "AWSPENDING": foreign})
	if n := f.versionCount(t); n != 2 {
		t.Errorf("versions = %d, want 2: nothing written", n)
	}

	// AWSPENDING left on the current version (what AWS rotation functions
	// leave behind) is not an unfinished rotation.
	if _, err := f.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(f.name), VersionStage: aws.String("AWSPENDING"),
		MoveToVersionId: aws.String(f.v0), RemoveFromVersionId: aws.String(foreign),
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Stage(ctx, rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret"), sinks.State{Prev: sinks.Version(f.v0)}); err != nil || string(v) != rotID {
		t.Fatalf("Stage with AWSPENDING on the current version = %q, %v", v, err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": f.v0, "AWSPENDING": rotID})
}

func TestAnotherWriterIsAConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	out, err := f.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(f.name), SecretString: aws.String(`{"written":"by hand"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	theirs := aws.ToString(out.VersionId)

	_, err = s.Promote(ctx, rot, key, st)
	if !errors.Is(err, plugin.ErrConflict) || !plugin.IsPermanent(err) {
		t.Fatalf("Promote after another writer = %v, want ErrConflict", err)
	}
	want := map[string]string{"AWSCURRENT": theirs, "AWSPREVIOUS": f.v0, "AWSPENDING": rotID}
	f.wantLabels(t, want)
	if err := s.Rollback(ctx, rot, st); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Rollback after another writer = %v, want ErrConflict", err)
	}
	f.wantLabels(t, want)

	_, err = s.Stage(ctx, rotation("another-rotation-id-0000000000000000"), key, sinks.State{Prev: sinks.Version(f.v0)})
	if !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Stage against a stale Prev = %v, want ErrConflict", err)
	}
}

func TestCreateIfMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, false)
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")

	plain := f.sink(awssm.Options{})
	if cur, err := plain.Current(ctx); err != nil || cur != "" {
		t.Fatalf("Current() of a missing secret = %q, %v", cur, err)
	}
	_, err := plain.Stage(ctx, rot, key, sinks.State{})
	if !errors.Is(err, plugin.ErrNotFound) || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "create_if_missing") {
		t.Fatalf("Stage to a missing secret = %v, want permanent ErrNotFound naming create_if_missing", err)
	}
	if err := plain.Rollback(ctx, rot, sinks.State{}); err != nil {
		t.Fatalf("Rollback with nothing done = %v", err)
	}

	s := f.sink(awssm.Options{CreateIfMissing: true, Description: "rekey test", KMSKeyID: "alias/rekey"})
	st := sinks.State{}
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatalf("Stage with create_if_missing: %v", err)
	}
	d, err := f.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(f.name)})
	if err != nil || aws.ToString(d.Description) != "rekey test" || aws.ToString(d.KmsKeyId) != "alias/rekey" {
		t.Fatalf("created secret: %+v, %v", d, err)
	}
	// Secrets Manager labels a secret's first version AWSCURRENT too.
	if got := f.labels(t); got["AWSPENDING"] != rotID || got["AWSCURRENT"] != rotID {
		t.Fatalf("labels after the first Stage = %v", got)
	}
	if v, err := s.Stage(ctx, rot, key, st); err != nil || v != st.Staged {
		t.Fatalf("Stage again = %q, %v", v, err)
	}
	if st.Promoted, err = s.Promote(ctx, rot, key, st); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": rotID})
	if err := s.Rollback(ctx, rot, st); err != nil {
		t.Fatalf("Rollback of a created secret: %v", err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": rotID})
}

func TestTemplateFormatAndReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	tmpl := template.Must(template.New("t").Option("missingkey=error").Parse("[default]\naws_access_key_id = {{.access_key_id}}\naws_secret_access_key = {{.secret_access_key}}\n"))
	s := f.sink(awssm.Options{Template: tmpl})
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	if got, want := f.value(t, "AWSPENDING"), "[default]\naws_access_key_id = AKIANEWNEWNEWNEWNEW1\naws_secret_access_key = new-secret\n"; got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
	// Promote compares what it reads back with the key it is given.
	other := newKey("AKIANEWNEWNEWNEWNEW1", "canary-differs")
	_, err = s.Promote(ctx, rot, other, st)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("Promote with a read-back mismatch = %v, want a permanent error", err)
	}
	for _, leak := range []string{"canary-differs", "new-secret"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error leaks %q: %v", leak, err)
		}
	}
	if _, err := s.Promote(ctx, rot, key, st); err != nil {
		t.Fatalf("Promote: %v", err)
	}

	bad := f.sink(awssm.Options{Template: template.Must(template.New("t").Option("missingkey=error").Parse("{{.password}}"))})
	_, err = bad.Stage(ctx, rotation("r-missing-field"), newKey("AKIANEWNEWNEWNEWNEW1", "canary-template"), sinks.State{Prev: sinks.Version(rotID)})
	if err == nil || !plugin.IsPermanent(err) || strings.Contains(err.Error(), "canary-template") || !strings.Contains(err.Error(), "access_key_id, secret_access_key") {
		t.Fatalf("Stage with a template naming a missing field = %v", err)
	}
}

func TestJSONReadBackMismatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	rot := rotation(rotID)
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, newKey("AKIANEWNEWNEWNEWNEW1", "new-secret"), st); err != nil {
		t.Fatal(err)
	}
	_, err = s.Promote(ctx, rot, newKey("AKIANEWNEWNEWNEWNEW1", "canary-json"), st)
	if err == nil || !strings.Contains(err.Error(), "differs") || strings.Contains(err.Error(), "canary-json") {
		t.Fatalf("Promote with a JSON read-back mismatch = %v", err)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	f.env.Server.Throttle("PutSecretValue", 2)
	f.env.Server.Fail("UpdateSecretVersionStage", 1)
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatalf("Stage with throttling: %v", err)
	}
	if _, err := s.Promote(ctx, rot, key, st); err != nil {
		t.Fatalf("Promote with a 500: %v", err)
	}
	var got []string
	for _, c := range f.env.Server.Ledger() {
		if c.Action == "PutSecretValue" || c.Action == "UpdateSecretVersionStage" {
			got = append(got, c.Action+":"+c.Code)
		}
	}
	want := "[PutSecretValue:ThrottlingException PutSecretValue:ThrottlingException PutSecretValue: UpdateSecretVersionStage:InternalFailure UpdateSecretVersionStage: UpdateSecretVersionStage:]"
	if fmt.Sprint(got) != want {
		t.Errorf("calls = %v\nwant    %s", got, want)
	}

	f.env.Server.Throttle("DescribeSecret", awsconn.DefaultMaxAttempts)
	if _, err := s.Current(ctx); awsconn.ErrorCode(err) != "ThrottlingException" || plugin.IsPermanent(err) {
		t.Fatalf("Current() throttled beyond the retries = %v, want a retryable error", err)
	}
}

func TestClientRequestToken(t *testing.T) {
	t.Parallel()
	for _, id := range []string{rotID, "0123456789abcdef0123456789abcdef", strings.Repeat("a", 64)} {
		if got := awssm.ClientRequestToken(id); got != id {
			t.Errorf("ClientRequestToken(%q) = %q, want it unchanged", id, got)
		}
	}
	seen := map[string]string{}
	for _, id := range []string{"", "r1", "r2", strings.Repeat("a", 65), "0123456789abcdef0123456789abcde_", "0123456789abcdef0123456789abcde"} {
		got := awssm.ClientRequestToken(id)
		if len(got) != 36 || got != awssm.ClientRequestToken(id) || got[14] != '8' {
			t.Errorf("ClientRequestToken(%q) = %q, want a stable UUID-formatted token", id, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("ClientRequestToken(%q) = ClientRequestToken(%q)", id, prev)
		}
		seen[got] = id
	}
}

func decode(t *testing.T, src string) (sinks.Sink, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	conns := plugin.NewConnections()
	conns.Add("aws", "prod", awsconn.New(awsconn.Options{Name: "prod", Region: "eu-central-1"}))
	factory, ok := sinks.Registry.Lookup("aws_secretsmanager")
	if !ok {
		t.Fatal("aws_secretsmanager is not registered")
	}
	return factory(&plugin.Env{Policy: "p", Kind: "aws_secretsmanager", Connections: conns}, f.Body)
}

func TestFactory(t *testing.T) {
	t.Parallel()
	s, diags := decode(t, "connection = aws.prod\nsecret_id = \"payments/aws\"\n")
	if diags.HasErrors() || s.Location() != "aws_secretsmanager:prod:payments/aws" {
		t.Fatalf("decode: %v, %v", diags, s)
	}
	if _, diags := decode(t, "connection = aws.prod\nsecret_id = \"a\"\ntemplate = \"{{.access_key_id}}\"\n"); diags.HasErrors() {
		t.Errorf("template without format: %v", diags)
	}
	_, diags = decode(t, "connection = aws.prod\nsecret_id = \"a\"\nkms_key_id = \"alias/x\"\n")
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags.Error(), "create_if_missing") {
		t.Errorf("kms_key_id without create_if_missing: %v, want one warning", diags)
	}
	for name, tc := range map[string]struct{ src, want string }{
		"unknown attribute":                {"connection = aws.prod\nsecret_id = \"a\"\nvalue = \"x\"\n", "Unsupported argument"},
		"secret_id is required":            {"connection = aws.prod\n", "Missing required argument"},
		"create_if_missing needs a name":   {"connection = aws.prod\nsecret_id = \"arn:aws:secretsmanager:eu-central-1:123456789012:secret:a-AbCdEf\"\ncreate_if_missing = true\n", "policy.hcl:3,1-25: create_if_missing needs a secret name"},
		"unknown format":                   {"connection = aws.prod\nsecret_id = \"a\"\nformat = \"yaml\"\n", "Invalid format"},
		"format template without template": {"connection = aws.prod\nsecret_id = \"a\"\nformat = \"template\"\n", "Missing template"},
		"template with format json":        {"connection = aws.prod\nsecret_id = \"a\"\nformat = \"json\"\ntemplate = \"x\"\n", "template needs format"},
		"template that does not parse":     {"connection = aws.prod\nsecret_id = \"a\"\ntemplate = \"{{.x\"\n", "policy.hcl:3,1-18: Invalid template"},
		"connection must be an aws one":    {"connection = aws.nope\nsecret_id = \"a\"\n", "Unknown connection"},
		"invalid secret name":              {"connection = aws.prod\nsecret_id = \"payments aws!\"\n", "policy.hcl:2,1-28: Invalid secret_id"},
		"secret name over 512 characters":  {"connection = aws.prod\nsecret_id = \"" + strings.Repeat("n", 513) + "\"\n", "Invalid secret_id"},
		"engine without rds":               {"connection = aws.prod\nsecret_id = \"a\"\nengine = \"postgres\"\n", "policy.hcl:3,1-20: engine needs format"},
		"rds with a template":              {"connection = aws.prod\nsecret_id = \"a\"\nformat = \"rds\"\nengine = \"postgres\"\ntemplate = \"x\"\n", "template needs format"},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := decode(t, tc.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics %q, want one containing %q", diags.Error(), tc.want)
			}
		})
	}
}

func TestFactoryRDS(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"connection = aws.prod\nsecret_id = \"prod/orders/db\"\nformat = \"rds\"\nengine = \"postgres\"\n",
		"connection = aws.prod\nsecret_id = \"prod/orders/db\"\nformat = \"rds\"\n", // the engine from the key
	} {
		if _, diags := decode(t, src); diags.HasErrors() {
			t.Errorf("format rds: %v", diags)
		}
	}
}

// ledgerCount counts the emulator's calls of an action.
func ledgerCount(f *fixture, action string) int {
	n := 0
	for _, c := range f.env.Server.Ledger() {
		if c.Action == action {
			n++
		}
	}
	return n
}

// TestValuesOverAWSLimitsAreRefusedBeforeSending: a value Secrets Manager
// would refuse (over 65,536 bytes, or empty) fails Stage with a permanent
// error naming the policy and the documented limit, and nothing is sent.
func TestValuesOverAWSLimitsAreRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	st := sinks.State{Prev: sinks.Version(f.v0)}
	big := newKey("AKIANEWNEWNEWNEWNEW1", strings.Repeat("s", awssm.MaxValueBytes))
	empty := template.Must(template.New("t").Parse(`{{if false}}{{.access_key_id}}{{end}}`))
	for _, tc := range []struct {
		name string
		sink *awssm.Sink
		key  plugin.Key
		want []string
	}{
		{"65,537 bytes and more", f.sink(awssm.Options{}), big, []string{`policy "p"`, "over Secrets Manager's limit of 65536 bytes", awssm.QuotasURL}},
		{"empty", f.sink(awssm.Options{Template: empty}), newKey("AKIANEWNEWNEWNEWNEW1", "s"), []string{`policy "p"`, "is empty", "API_PutSecretValue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ledgerCount(f, "PutSecretValue")
			_, err := tc.sink.Stage(ctx, rotation(rotID), tc.key, st)
			if err == nil || !plugin.IsPermanent(err) {
				t.Fatalf("Stage = %v, want a permanent error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "sssssss") {
				t.Errorf("error leaks the value")
			}
			if n := ledgerCount(f, "PutSecretValue") - before; n != 0 {
				t.Errorf("%d PutSecretValue calls, want none: the limit is checked before sending", n)
			}
		})
	}
	// The limit itself is accepted.
	fits := newKey("AKIANEWNEWNEWNEWNEW1", strings.Repeat("s", awssm.MaxValueBytes-len(`{"access_key_id":"AKIANEWNEWNEWNEWNEW1","secret_access_key":""}`)))
	if _, err := f.sink(awssm.Options{}).Stage(ctx, rotation(rotID), fits, st); err != nil {
		t.Fatalf("Stage of exactly %d bytes: %v", awssm.MaxValueBytes, err)
	}
}

// TestSecretScheduledForDeletion: Promote refuses, naming restore-secret;
// Rollback reports it and completes once the secret is restored.
func TestSecretScheduledForDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{})
	rot, key := rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret")
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(f.name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Promote(ctx, rot, key, st)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "scheduled for deletion") || !strings.Contains(err.Error(), "restore-secret") {
		t.Fatalf("Promote of a secret scheduled for deletion = %v, want a permanent error naming restore-secret", err)
	}
	if err := s.Rollback(ctx, rot, st); err == nil || !strings.Contains(err.Error(), "restore-secret") {
		t.Fatalf("Rollback of a secret scheduled for deletion = %v, want an error naming restore-secret", err)
	}
	if _, err := f.sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(f.name)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(ctx, rot, st); err != nil {
		t.Fatalf("Rollback after restore: %v", err)
	}
	f.wantLabels(t, map[string]string{"AWSCURRENT": f.v0})
}

// TestVersionQuota: at 100 recent versions Secrets Manager refuses a new
// one; Stage says which quota and what to do.
func TestVersionQuota(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	for i := 1; i < 100; i++ {
		if _, err := f.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(f.name), SecretString: aws.String(fmt.Sprintf("v%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	cur := f.labels(t)["AWSCURRENT"]
	_, err := f.sink(awssm.Options{}).Stage(ctx, rotation(rotID), newKey("AKIANEWNEWNEWNEWNEW1", "new-secret"), sinks.State{Prev: sinks.Version(cur)})
	if err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("Stage at 100 versions = %v, want a permanent error", err)
	}
	for _, w := range []string{`policy "p"`, "100 versions", "24 hours", awssm.QuotasURL} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestRDSFormat: format rds writes the JSON structure of AWS's database
// secrets from a database key's fields (uri and other fields left out, the
// port a number), and Promote reads it back.
func TestRDSFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t, true)
	s := f.sink(awssm.Options{RDS: true, Engine: "postgres"})
	key := plugin.Key{ID: "app_b-2", Value: secret.Fields{
		"username": secret.New("app_b"), "password": secret.New(`p"w\ord`), "host": secret.New("db.internal"),
		"port": secret.New("5432"), "dbname": secret.New("orders"), "uri": secret.New("postgres://app_b@db.internal/orders"),
	}}
	rot := rotation(rotID)
	st := sinks.State{Prev: sinks.Version(f.v0)}
	var err error
	if st.Staged, err = s.Stage(ctx, rot, key, st); err != nil {
		t.Fatal(err)
	}
	want := `{"engine":"postgres","host":"db.internal","username":"app_b","password":"p\"w\\ord","dbname":"orders","port":5432}`
	if got := f.value(t, "AWSPENDING"); got != want {
		t.Fatalf("rds value\n got %s\nwant %s", got, want)
	}
	if _, err := s.Promote(ctx, rot, key, st); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	// Without engine in the sink, the key's engine field (the database
	// providers set it) is used.
	fromKey := f.sink(awssm.Options{RDS: true})
	key2 := plugin.Key{ID: "app_a-3", Value: secret.Fields{"username": secret.New("app_a"), "password": secret.New("pw2"), "engine": secret.New("mysql"), "port": secret.New("3306")}}
	rot2 := rotation("second-rotation-id-00000000000000000")
	st2 := sinks.State{Prev: sinks.Version(rotID)}
	if st2.Staged, err = fromKey.Stage(ctx, rot2, key2, st2); err != nil {
		t.Fatal(err)
	}
	if got, want := f.value(t, "AWSPENDING"), `{"engine":"mysql","username":"app_a","password":"pw2","port":3306}`; got != want {
		t.Fatalf("rds value from the key's engine\n got %s\nwant %s", got, want)
	}
	if err := fromKey.Rollback(ctx, rot2, st2); err != nil {
		t.Fatal(err)
	}
	for name, fields := range map[string]secret.Fields{
		"no engine":        {"username": secret.New("u"), "password": secret.New("canary-pw")},
		"no password":      {"username": secret.New("u")},
		"port not numeric": {"username": secret.New("u"), "password": secret.New("canary-pw"), "port": secret.New("http")},
	} {
		sk := s
		if name == "no engine" {
			sk = fromKey
		}
		_, err := sk.Stage(ctx, rotation("other-rotation-id-0000000000000000"), plugin.Key{ID: "k", Value: fields}, sinks.State{Prev: sinks.Version(rotID)})
		if err == nil || !plugin.IsPermanent(err) || strings.Contains(err.Error(), "canary-pw") {
			t.Errorf("%s: Stage = %v, want a permanent error without the password", name, err)
		}
	}
}
