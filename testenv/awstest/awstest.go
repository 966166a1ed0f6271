// Package awstest starts the project's AWS emulator (testenv/awsemu) for the
// tests of the AWS plugins and gives them connections to it: real HTTP on
// 127.0.0.1, real SigV4 signatures, the SDK's real retryer.
package awstest

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/testenv/awsemu"
)

// Region is the region of every emulator and connection started here.
const Region = "eu-central-1"

// Env is a running emulator and a connection to it with admin credentials.
type Env struct {
	Server *awsemu.Server
	// Conn is named "test" and signs with the emulator's admin key.
	Conn *awsconn.Conn
	// Clock is the emulator's clock.
	Clock *Clock
}

// Start starts an emulator with a manual clock (starting at the current
// time) and stops it when t ends. consistencyDelay bounds how late access
// key state changes reach authentication: 0 is the emulator's default (as
// late as AWS, with a seeded random spread), awsemu.Immediate turns the
// delay off; a test that does so says why. Uses of a key show in
// GetAccessKeyLastUsed after the emulator's default usage delay.
func Start(t testing.TB, consistencyDelay time.Duration) *Env {
	t.Helper()
	return StartWith(t, awsemu.Options{ConsistencyDelay: consistencyDelay})
}

// StartWith is Start with more emulator options; Region and Now are set
// here.
func StartWith(t testing.TB, opts awsemu.Options) *Env {
	t.Helper()
	clock := NewClock(time.Now())
	opts.Region, opts.Now = Region, clock.Now
	s, err := awsemu.Start(opts)
	if err != nil {
		t.Fatalf("starting the AWS emulator: %v", err)
	}
	t.Logf("AWS emulator seed %d (%s=%d repeats its delays)", s.Seed(), awsemu.SeedEnv, s.Seed())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the AWS emulator: %v", err)
		}
	})
	id, sec := s.AdminKey()
	return &Env{Server: s, Conn: Conn(s, "test", id, sec), Clock: clock}
}

// Settle advances the emulator's clock until every access key change and
// every use made so far has taken effect.
func (e *Env) Settle() {
	if d := e.Server.SettledAt().Sub(e.Clock.Now()); d > 0 {
		e.Clock.Advance(d)
	}
}

// Conn returns a connection to s that signs with the given key. Retries
// back off for at most 5ms so that throttling tests run fast.
func Conn(s *awsemu.Server, name, accessKeyID, secretAccessKey string) *awsconn.Conn {
	return awsconn.New(awsconn.Options{
		Name:        name,
		Region:      Region,
		Endpoint:    s.URL(),
		Credentials: credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
		MaxBackoff:  5 * time.Millisecond,
	})
}

// Clock is a manual clock for the emulator.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// CLI returns the path of the aws command line (Debian's awscli), or skips
// t when it is absent, failing instead when REKEY_TEST_REQUIRE_SERVERS=1.
func CLI(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("the aws command line is required (REKEY_TEST_REQUIRE_SERVERS=1): apt-get install awscli")
		}
		t.Skip("the aws command line is absent: apt-get install awscli to run this test")
	}
	return p
}

// CLIEnv returns the environment for running the aws command line against
// s with the given key, isolated from the user's own configuration.
func CLIEnv(t testing.TB, s *awsemu.Server, accessKeyID, secretAccessKey string) []string {
	dir := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AWS_CONFIG_FILE=" + dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE=" + dir + "/credentials",
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
