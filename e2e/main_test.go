package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a tiny HTTP client instead of
// running tests: the reload hooks of the policies run it to tell a
// dependent to reload, so that the tests need no curl.
const helperEnv = "E2E_HELPER_POST_URL"

// awsFiles are the shared config and credentials files of the whole test
// process. aws connections take their credentials from the standard chain,
// never from a policy file, so each test adds a profile with its
// emulator's admin key and names it in its aws block.
var awsFiles struct {
	mu       sync.Mutex
	dir      string
	profiles strings.Builder
	n        int
}

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		os.Exit(post(url))
	}
	dir, err := os.MkdirTemp("", "rekey-e2e-aws-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	awsFiles.dir = dir
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "VAULT_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE"} {
		_ = os.Unsetenv(v)
	}
	_ = os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_ = os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	_ = os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// addAWSProfile adds a profile with the given key to the shared
// credentials file and returns its name.
func addAWSProfile(t testing.TB, accessKeyID, secretAccessKey string) string {
	t.Helper()
	awsFiles.mu.Lock()
	defer awsFiles.mu.Unlock()
	awsFiles.n++
	name := fmt.Sprintf("e2e-%d", awsFiles.n)
	fmt.Fprintf(&awsFiles.profiles, "[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n", name, accessKeyID, secretAccessKey)
	path := filepath.Join(awsFiles.dir, "credentials")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(awsFiles.profiles.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return name
}

// post is the helper process: POST to url, exit 0 on a 2xx answer.
func post(url string) int {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "text/plain", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
