package awsemu_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rekeyhq/rekey/testenv/awsemu"
)

// awsCLIPath is Debian's awscli; `which aws` may find a pyenv shim instead.
const awsCLIPath = "/usr/bin/aws"

// awsCLI runs awscli against an emulator with a clean configuration.
type awsCLI struct {
	url, home string
}

var cliErrCode = regexp.MustCompile(`An error occurred \((\w+)\)`)

// run returns awscli's JSON output (nil when empty), the AWS error code
// found on stderr and the exit status.
func (c awsCLI) run(t *testing.T, id, secret string, args ...string) (out map[string]any, code string, exit int, stderr string) {
	t.Helper()
	cmd := exec.Command(awsCLIPath, append([]string{"--endpoint-url", c.url, "--output", "json"}, args...)...)
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + c.home,
		"AWS_CONFIG_FILE=" + filepath.Join(c.home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(c.home, "credentials"),
		"AWS_ACCESS_KEY_ID=" + id,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_PAGER=",
		"AWS_EC2_METADATA_DISABLED=true",
		"NO_PROXY=127.0.0.1",
	}
	var stdout, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("aws %v: %v", args, err)
	}
	if m := cliErrCode.FindStringSubmatch(errb.String()); m != nil {
		code = m[1]
	}
	if s := bytes.TrimSpace(stdout.Bytes()); len(s) > 0 {
		if err := json.Unmarshal(s, &out); err != nil {
			t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, s)
		}
	}
	return out, code, exit, errb.String()
}

// str digs a string out of awscli's JSON output along a path of keys and
// list indexes.
func str(v any, path ...any) string {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[p]
		case int:
			l, _ := v.([]any)
			if p >= len(l) {
				return ""
			}
			v = l[p]
		}
	}
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAWSCLIConformance drives the emulator with Debian's awscli, a client
// nobody here wrote, and checks its parsed output and error codes.
func TestAWSCLIConformance(t *testing.T) {
	if _, err := os.Stat(awsCLIPath); err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s is required (apt-get install -y awscli): %v", awsCLIPath, err)
		}
		t.Skipf("%s not installed (apt-get install -y awscli)", awsCLIPath)
	}
	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The emulator's clock is advanced by hand past its delays. awscli signs
	// with the real clock, so the advances stay well within SigV4's 15
	// minutes of allowed skew.
	const (
		consistency = 10 * time.Second
		usage       = time.Minute
	)
	clk := newClock()
	s := start(t, awsemu.Options{Now: clk.Now, ConsistencyDelay: consistency, UsageDelay: usage})
	t.Logf("emulator seed %d", s.Seed())
	cli := awsCLI{url: s.URL(), home: home}
	adminID, adminSecret := s.AdminKey()
	type key struct{ id, secret string }
	var (
		admin        = key{adminID, adminSecret}
		k1, k2       key // carol's keys
		badSecret    = key{adminID, strings.Repeat("x", 40)}
		firstVersion string
		usedAt       time.Time
	)
	const (
		token   = "11111111-2222-4333-8444-555555555555"
		token3  = "33333333-2222-4333-8444-555555555555"
		secName = "app/db-password"
	)
	propagate := func() { clk.Advance(consistency) }
	sm := sdk(t, s, adminID, adminSecret).sm
	keyCount := func() int { return len(s.Keys("carol")) }

	steps := []struct {
		name   string
		as     *key
		args   func() []string
		code   string // expected AWS error code; "" for success
		check  func(out map[string]any) error
		before func()
	}{
		{name: "iam create-user", as: &admin, args: func() []string { return []string{"iam", "create-user", "--user-name", "carol"} },
			check: func(o map[string]any) error {
				return expect(str(o, "User", "Arn"), "arn:aws:iam::123456789012:user/carol")
			}},
		{name: "iam create-access-key", as: &admin, args: func() []string { return []string{"iam", "create-access-key", "--user-name", "carol"} },
			check: func(o map[string]any) error {
				k1 = key{str(o, "AccessKey", "AccessKeyId"), str(o, "AccessKey", "SecretAccessKey")}
				if !regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(k1.id) || len(k1.secret) != 40 {
					return fmt.Errorf("bad key %v", o)
				}
				return expect(str(o, "AccessKey", "Status")+" "+str(o, "AccessKey", "UserName"), "Active carol")
			}},
		{name: "iam create-access-key (2nd)", as: &admin, args: func() []string { return []string{"iam", "create-access-key", "--user-name", "carol"} },
			check: func(o map[string]any) error {
				k2 = key{str(o, "AccessKey", "AccessKeyId"), str(o, "AccessKey", "SecretAccessKey")}
				return nil
			}},
		{name: "iam create-access-key (3rd)", as: &admin, args: func() []string { return []string{"iam", "create-access-key", "--user-name", "carol"} },
			code: "LimitExceeded"},
		{name: "sts get-caller-identity (new key, not yet propagated)", as: &k1, args: func() []string { return []string{"sts", "get-caller-identity"} },
			code: "InvalidClientTokenId"},
		{name: "iam list-access-keys", as: &admin, args: func() []string { return []string{"iam", "list-access-keys", "--user-name", "carol"} },
			check: func(o map[string]any) error {
				got := str(o, "AccessKeyMetadata", 0, "AccessKeyId") + " " + str(o, "AccessKeyMetadata", 1, "AccessKeyId") +
					" " + str(o, "AccessKeyMetadata", 1, "Status") + " " + str(o, "AccessKeyMetadata", 1, "UserName")
				if str(o, "AccessKeyMetadata", 1, "CreateDate") == "" {
					return fmt.Errorf("no CreateDate: %v", o)
				}
				return expect(got, k1.id+" "+k2.id+" Active carol")
			}},
		{name: "iam get-access-key-last-used (never used)", as: &admin, args: func() []string { return []string{"iam", "get-access-key-last-used", "--access-key-id", k1.id} },
			check: func(o map[string]any) error {
				return expect(str(o, "UserName")+" "+str(o, "AccessKeyLastUsed"), `carol {"Region":"N/A","ServiceName":"N/A"}`)
			}},
		{name: "sts get-caller-identity (new key, propagated)", as: &k1, args: func() []string { return []string{"sts", "get-caller-identity"} },
			before: func() { propagate(); usedAt = clk.Now().UTC() },
			check: func(o map[string]any) error {
				return expect(str(o, "Arn")+" "+str(o, "Account"), "arn:aws:iam::123456789012:user/carol 123456789012")
			}},
		{name: "iam get-access-key-last-used (use not yet recorded)", as: &admin, args: func() []string { return []string{"iam", "get-access-key-last-used", "--access-key-id", k1.id} },
			check: func(o map[string]any) error {
				return expect(str(o, "AccessKeyLastUsed"), `{"Region":"N/A","ServiceName":"N/A"}`)
			}},
		{name: "iam get-access-key-last-used (recorded, to the minute)", as: &admin, args: func() []string { return []string{"iam", "get-access-key-last-used", "--access-key-id", k1.id} },
			before: func() { clk.Advance(usage) },
			check: func(o map[string]any) error {
				used, err := time.Parse(time.RFC3339, str(o, "AccessKeyLastUsed", "LastUsedDate"))
				if err != nil || !used.Equal(usedAt.Truncate(time.Minute)) {
					return fmt.Errorf("LastUsedDate %q (%v), want %s", str(o, "AccessKeyLastUsed", "LastUsedDate"), err, usedAt.Truncate(time.Minute).Format(time.RFC3339))
				}
				return expect(str(o, "AccessKeyLastUsed", "ServiceName")+" "+str(o, "AccessKeyLastUsed", "Region"), "sts us-east-1")
			}},
		{name: "sts get-caller-identity (throttled once, retried)", as: &k1, args: func() []string { return []string{"sts", "get-caller-identity"} },
			before: func() { s.Throttle("GetCallerIdentity", 1) },
			check: func(map[string]any) error {
				got := codes(s, "GetCallerIdentity")
				return expect(fmt.Sprint(got[len(got)-2:]), "[Throttling ]")
			}},
		{name: "iam update-access-key", as: &admin, args: func() []string {
			return []string{"iam", "update-access-key", "--user-name", "carol", "--access-key-id", k2.id, "--status", "Inactive"}
		}, check: func(map[string]any) error { return expect(s.Keys("carol")[1].Status, "Inactive") }},
		{name: "sts get-caller-identity (key deactivated, not yet propagated)", as: &k2, args: func() []string { return []string{"sts", "get-caller-identity"} },
			before: func() { clk.Advance(consistency / 4) }},
		{name: "sts get-caller-identity (inactive key)", as: &k2, args: func() []string { return []string{"sts", "get-caller-identity"} },
			before: propagate, code: "InvalidClientTokenId"},
		{name: "iam delete-access-key", as: &admin, args: func() []string {
			return []string{"iam", "delete-access-key", "--user-name", "carol", "--access-key-id", k1.id}
		}, check: func(map[string]any) error { return expect(fmt.Sprint(keyCount()), "1") }},
		{name: "iam delete-access-key (again)", as: &admin, args: func() []string {
			return []string{"iam", "delete-access-key", "--user-name", "carol", "--access-key-id", k1.id}
		}, code: "NoSuchEntity"},
		{name: "sts get-caller-identity (key deleted, not yet propagated)", as: &k1, args: func() []string { return []string{"sts", "get-caller-identity"} }},
		{name: "sts get-caller-identity (deleted key)", as: &k1, args: func() []string { return []string{"sts", "get-caller-identity"} },
			before: propagate, code: "InvalidClientTokenId"},
		{name: "sts get-caller-identity (wrong secret)", as: &badSecret, args: func() []string { return []string{"sts", "get-caller-identity"} },
			code: "SignatureDoesNotMatch"},
		{name: "secretsmanager create-secret", as: &admin, args: func() []string {
			return []string{"secretsmanager", "create-secret", "--name", secName, "--secret-string", "v1", "--description", "d"}
		}, check: func(o map[string]any) error {
			firstVersion = str(o, "VersionId")
			if !regexp.MustCompile(`^arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-password-\w{6}$`).MatchString(str(o, "ARN")) {
				return fmt.Errorf("ARN %s", str(o, "ARN"))
			}
			return expect(str(o, "Name"), secName)
		}},
		{name: "secretsmanager create-secret (exists)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "create-secret", "--name", secName, "--secret-string", "v1"}
		}, code: "ResourceExistsException"},
		{name: "secretsmanager create-secret (invalid name)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "create-secret", "--name", "app/db password", "--secret-string", "v1"}
		}, code: "ValidationException"},
		{name: "secretsmanager put-secret-value (65,537 bytes)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", strings.Repeat("a", 65537)}
		}, code: "ValidationException"},
		{name: "secretsmanager put-secret-value (empty value)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", ""}
		}, code: "InvalidRequestException"},
		{name: "secretsmanager put-secret-value (21 staging labels)", as: &admin, args: func() []string {
			args := []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v9", "--version-stages"}
			for i := range 21 {
				args = append(args, fmt.Sprintf("L%d", i))
			}
			return args
		}, code: "ValidationException"},
		{name: "secretsmanager put-secret-value AWSPENDING", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v2", "--client-request-token", token, "--version-stages", "AWSPENDING"}
		}, check: func(o map[string]any) error {
			return expect(str(o, "VersionId")+" "+str(o, "VersionStages"), token+` ["AWSPENDING"]`)
		}},
		{name: "secretsmanager put-secret-value (same token, same value)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v2", "--client-request-token", token, "--version-stages", "AWSPENDING"}
		}, check: func(o map[string]any) error { return expect(str(o, "VersionId"), token) }},
		{name: "secretsmanager put-secret-value (same token, other value)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v3", "--client-request-token", token}
		}, code: "ResourceExistsException"},
		{name: "secretsmanager update-secret-version-stage (no --remove-from-version-id)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "update-secret-version-stage", "--secret-id", secName, "--version-stage", "AWSCURRENT", "--move-to-version-id", token}
		}, code: "InvalidParameterException"},
		{name: "secretsmanager update-secret-version-stage", as: &admin, args: func() []string {
			return []string{"secretsmanager", "update-secret-version-stage", "--secret-id", secName, "--version-stage", "AWSCURRENT",
				"--move-to-version-id", token, "--remove-from-version-id", firstVersion}
		}, check: func(o map[string]any) error { return expect(str(o, "Name"), secName) }},
		{name: "secretsmanager get-secret-value AWSCURRENT", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName, "--version-stage", "AWSCURRENT"}
		}, check: func(o map[string]any) error {
			return expect(str(o, "SecretString")+" "+str(o, "VersionId")+" "+str(o, "VersionStages"), "v2 "+token+` ["AWSPENDING","AWSCURRENT"]`)
		}},
		{name: "secretsmanager get-secret-value AWSPREVIOUS", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName, "--version-stage", "AWSPREVIOUS"}
		}, check: func(o map[string]any) error {
			return expect(str(o, "SecretString")+" "+str(o, "VersionId"), "v1 "+firstVersion)
		}},
		{name: "secretsmanager update-secret-version-stage (remove AWSPENDING)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "update-secret-version-stage", "--secret-id", secName, "--version-stage", "AWSPENDING", "--remove-from-version-id", token}
		}},
		{name: "secretsmanager get-secret-value AWSPENDING (none)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName, "--version-stage", "AWSPENDING"}
		}, code: "ResourceNotFoundException"},
		{name: "secretsmanager describe-secret", as: &admin, args: func() []string {
			return []string{"secretsmanager", "describe-secret", "--secret-id", secName}
		}, check: func(o map[string]any) error {
			if str(o, "CreatedDate") == "" || str(o, "LastChangedDate") == "" {
				return fmt.Errorf("dates missing: %v", o)
			}
			want, _ := json.Marshal(map[string][]string{firstVersion: {"AWSPREVIOUS"}, token: {"AWSCURRENT"}})
			return expect(str(o, "Description")+" "+str(o, "VersionIdsToStages"), "d "+string(want))
		}},
		{name: "secretsmanager list-secret-version-ids", as: &admin, args: func() []string {
			return []string{"secretsmanager", "list-secret-version-ids", "--secret-id", secName, "--include-deprecated"}
		}, check: func(o map[string]any) error {
			if str(o, "Versions", 1, "CreatedDate") == "" {
				return fmt.Errorf("no CreatedDate: %v", o)
			}
			return expect(str(o, "Versions", 0, "VersionId")+" "+str(o, "Versions", 1, "VersionId")+" "+str(o, "Versions", 1, "VersionStages"),
				firstVersion+" "+token+` ["AWSCURRENT"]`)
		}},
		{name: "secretsmanager put-secret-value (version for later)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v4", "--client-request-token", token3, "--version-stages", "AWSPENDING"}
		}},
		{name: "secretsmanager update-secret-version-stage (its only label removed)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "update-secret-version-stage", "--secret-id", secName, "--version-stage", "AWSPENDING", "--remove-from-version-id", token3}
		}},
		{name: "secretsmanager put-secret-value (same token, no labels left: no VersionStages)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v4", "--client-request-token", token3, "--version-stages", "AWSPENDING"}
		}, check: func(o map[string]any) error {
			if _, ok := o["VersionStages"]; ok {
				return fmt.Errorf("VersionStages present: %v", o)
			}
			return expect(str(o, "VersionId"), token3)
		}},
		{name: "secretsmanager list-secret-version-ids (version without labels: no VersionStages)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "list-secret-version-ids", "--secret-id", secName, "--include-deprecated"}
		}, check: func(o map[string]any) error {
			vs, _ := o["Versions"].([]any)
			for _, v := range vs {
				if m, _ := v.(map[string]any); m["VersionId"] == token3 {
					if _, ok := m["VersionStages"]; ok {
						return fmt.Errorf("VersionStages present: %v", m)
					}
					return nil
				}
			}
			return fmt.Errorf("version %s not listed: %v", token3, o)
		}},
		// Removal of unlabelled versions after 24 hours: TestSecretsManagerVersionQuota
		// (awscli signs with the real clock and cannot follow the emulator a day ahead).
		{name: "secretsmanager put-secret-value (101st version)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v101"}
		}, before: func() {
			for i := 4; i <= 100; i++ { // versions 1-3 exist; the SDK adds 97
				if _, err := sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(secName), SecretString: aws.String(fmt.Sprintf("f%d", i))}); err != nil {
					t.Errorf("filling the secret's versions: %v", err)
					return
				}
			}
		}, code: "LimitExceededException"},
		{name: "secretsmanager delete-secret", as: &admin, args: func() []string {
			return []string{"secretsmanager", "delete-secret", "--secret-id", secName, "--recovery-window-in-days", "7"}
		}, check: func(o map[string]any) error {
			if str(o, "DeletionDate") == "" {
				return fmt.Errorf("no DeletionDate: %v", o)
			}
			return nil
		}},
		{name: "secretsmanager get-secret-value (scheduled for deletion)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName}
		}, code: "InvalidRequestException"},
		{name: "secretsmanager put-secret-value (scheduled for deletion)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "put-secret-value", "--secret-id", secName, "--secret-string", "v5"}
		}, code: "InvalidRequestException"},
		{name: "secretsmanager describe-secret (scheduled for deletion)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "describe-secret", "--secret-id", secName}
		}, check: func(o map[string]any) error {
			if str(o, "DeletedDate") == "" {
				return fmt.Errorf("no DeletedDate: %v", o)
			}
			return nil
		}},
		{name: "secretsmanager restore-secret", as: &admin, args: func() []string {
			return []string{"secretsmanager", "restore-secret", "--secret-id", secName}
		}},
		{name: "secretsmanager get-secret-value (restored)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName}
		}, check: func(o map[string]any) error { return expect(str(o, "SecretString"), "f100") }},
		{name: "secretsmanager get-secret-value (unknown secret)", as: &admin, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", "nope"}
		}, code: "ResourceNotFoundException"},
		{name: "secretsmanager get-secret-value (deleted key)", as: &k1, args: func() []string {
			return []string{"secretsmanager", "get-secret-value", "--secret-id", secName}
		}, code: "UnrecognizedClientException"},
	}

	// The Secrets Manager calls made as admin and the IAM/STS calls touch
	// disjoint state, so the two sequences run side by side (awscli starts
	// slowly on a loaded machine).
	groups := map[string][]int{}
	for i, st := range steps {
		g := "iam-sts"
		if strings.HasPrefix(st.name, "secretsmanager") && st.as == &admin {
			g = "secretsmanager"
		}
		groups[g] = append(groups[g], i)
	}
	for _, g := range []string{"iam-sts", "secretsmanager"} {
		t.Run(g, func(t *testing.T) {
			t.Parallel()
			var report strings.Builder
			fmt.Fprintf(&report, "%-75s %-28s %-28s %4s  %s\n", "awscli call", "want", "got", "exit", "result")
			for _, i := range groups[g] {
				st := steps[i]
				if st.before != nil {
					st.before()
				}
				args := st.args()
				start := time.Now()
				out, code, exit, stderr := cli.run(t, st.as.id, st.as.secret, args...)
				var problem string
				switch {
				case st.code == "" && exit != 0:
					problem = fmt.Sprintf("exit %d: %s", exit, strings.TrimSpace(stderr))
				case st.code != "" && (code != st.code || exit != 254):
					problem = fmt.Sprintf("want %s and exit 254, got %q exit %d: %s", st.code, code, exit, strings.TrimSpace(stderr))
				case st.check != nil:
					if err := st.check(out); err != nil {
						problem = err.Error()
					}
				}
				result := "pass"
				if problem != "" {
					result = "FAIL"
					t.Errorf("%s (aws %s): %s", st.name, strings.Join(args, " "), problem)
				}
				want, got := st.code, code
				if want == "" {
					want = "success"
				}
				if got == "" && exit == 0 {
					got = "success"
				}
				fmt.Fprintf(&report, "%-75s %-28s %-28s %4d  %s (%v)\n", st.name, want, got, exit, result, time.Since(start).Round(time.Millisecond))
			}
			t.Logf("awscli conformance (%s):\n%s", cliVersion(), report.String())
		})
	}
}

func expect(got, want string) error {
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func cliVersion() string {
	out, _ := exec.Command(awsCLIPath, "--version").Output()
	return strings.TrimSpace(string(out))
}
