// Package aws implements the `aws "NAME" { ... }` connection block: the
// region, endpoints, retry settings and credential chain that the AWS
// plugins (aws_iam, aws_secretsmanager, aws_sts) share.
//
// Policy files never hold AWS credentials. A connection takes them from the
// SDK's standard chain (environment, shared config and credentials files or
// a named profile, web identity, container and instance roles), optionally
// assuming a role on top. The chain is resolved lazily, on the first call
// that needs it, never while the configuration is loaded.
package aws

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Kind is the block type of the connection: `aws "prod" { ... }`.
const Kind = "aws"

// DefaultMaxAttempts is the number of attempts the SDK's standard retryer
// makes for one call (throttling, 5xx and network errors are retried).
const DefaultMaxAttempts = 5

// DefaultSessionName is the role session name used when assume_role sets
// none; it shows in CloudTrail as the session of the assumed role.
const DefaultSessionName = "rekey"

// Service names accepted by Conn.Endpoint.
const (
	ServiceIAM            = "iam"
	ServiceSTS            = "sts"
	ServiceSecretsManager = "secretsmanager"
)

// AssumeRole configures an sts:AssumeRole on top of the credential chain.
type AssumeRole struct {
	// RoleARN is the role to assume.
	RoleARN string
	// ExternalID is passed to AssumeRole when set.
	ExternalID string
	// SessionName names the role session (default DefaultSessionName).
	SessionName string
	// Duration of the role session; zero means the SDK default (15m).
	Duration time.Duration
}

// Options configure a connection. The HCL block sets all but Credentials,
// MaxBackoff and HTTPClient, which exist for tests and for programs that
// embed rekey.
type Options struct {
	// Name is the block label.
	Name string
	// Region is the AWS region; empty means the AWS_REGION environment
	// variable (or the profile's region).
	Region string
	// Profile selects a shared config profile.
	Profile string
	// Endpoint is one base endpoint for every service (tests, VPC
	// endpoints); the per-service endpoints below take precedence.
	Endpoint               string
	IAMEndpoint            string
	STSEndpoint            string
	SecretsManagerEndpoint string
	// MaxAttempts for the SDK's standard retryer (default DefaultMaxAttempts).
	MaxAttempts int
	// AssumeRole, when set, assumes this role with the chain's credentials.
	AssumeRole *AssumeRole
	// Credentials, when set, replaces the default credential chain.
	Credentials aws.CredentialsProvider
	// MaxBackoff caps the retryer's delay between attempts (default: the
	// SDK's, 20s).
	MaxBackoff time.Duration
	// HTTPClient sends the requests (default: the SDK's).
	HTTPClient *http.Client
}

// Conn is a configured AWS connection. It is safe for concurrent use.
type Conn struct {
	opts Options

	mu     sync.Mutex
	cfg    aws.Config
	loaded bool

	keyHTTPOnce sync.Once
	keyHTTP     sts.HTTPClient
}

// New returns a connection. It does no I/O.
func New(opts Options) *Conn {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.AssumeRole != nil && opts.AssumeRole.SessionName == "" {
		ar := *opts.AssumeRole
		ar.SessionName = DefaultSessionName
		opts.AssumeRole = &ar
	}
	return &Conn{opts: opts}
}

// Name returns the block label of the connection.
func (c *Conn) Name() string { return c.opts.Name }

// Region returns the configured region, or AWS_REGION when none is set.
func (c *Conn) Region() string {
	if c.opts.Region != "" {
		return c.opts.Region
	}
	return os.Getenv("AWS_REGION")
}

// MaxAttempts returns the retryer's attempt limit.
func (c *Conn) MaxAttempts() int { return c.opts.MaxAttempts }

// Endpoint returns the endpoint configured for a service (one of the
// Service constants), falling back to the common endpoint; empty means the
// SDK resolves the public AWS endpoint.
func (c *Conn) Endpoint(service string) string {
	var e string
	switch service {
	case ServiceIAM:
		e = c.opts.IAMEndpoint
	case ServiceSTS:
		e = c.opts.STSEndpoint
	case ServiceSecretsManager:
		e = c.opts.SecretsManagerEndpoint
	}
	if e == "" {
		e = c.opts.Endpoint
	}
	return e
}

// Retryer returns a new standard retryer with the connection's settings and
// the given attempt limit.
func (c *Conn) Retryer(maxAttempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		if c.opts.MaxBackoff > 0 {
			o.MaxBackoff = c.opts.MaxBackoff
		}
	})
}

// HTTPClient returns the HTTP client set in Options, or nil.
func (c *Conn) HTTPClient() *http.Client { return c.opts.HTTPClient }

// Config returns the SDK configuration, resolving the credential chain on
// first use. A failure is not cached: the next call tries again.
func (c *Conn) Config(ctx context.Context) (aws.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return c.cfg, nil
	}
	cfg, err := c.load(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading aws connection %q: %w", c.opts.Name, err)
	}
	c.cfg, c.loaded = cfg, true
	return cfg, nil
}

func (c *Conn) load(ctx context.Context) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return c.Retryer(c.opts.MaxAttempts) }),
		config.WithAppID("rekey"),
	}
	if c.opts.Region != "" {
		opts = append(opts, config.WithRegion(c.opts.Region))
	}
	if c.opts.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.opts.Profile))
	}
	if c.opts.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.opts.Credentials))
	}
	if c.opts.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(c.opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	// max_attempts wins over AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, which would
	// otherwise wrap the retryer.
	cfg.RetryMaxAttempts, cfg.RetryMode = 0, ""
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no region: set region in the aws %q block or AWS_REGION", c.opts.Name)
	}
	if ar := c.opts.AssumeRole; ar != nil {
		ep := c.endpointOption(ServiceSTS)
		stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) { ep(o) })
		p := stscreds.NewAssumeRoleProvider(stsClient, ar.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = ar.SessionName
			if ar.ExternalID != "" {
				o.ExternalID = aws.String(ar.ExternalID)
			}
			if ar.Duration > 0 {
				o.Duration = ar.Duration
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(p)
	}
	return cfg, nil
}

func (c *Conn) endpointOption(service string) func(any) {
	e := c.Endpoint(service)
	return func(o any) {
		if e == "" {
			return
		}
		switch o := o.(type) {
		case *iam.Options:
			o.BaseEndpoint = aws.String(e)
		case *sts.Options:
			o.BaseEndpoint = aws.String(e)
		case *secretsmanager.Options:
			o.BaseEndpoint = aws.String(e)
		}
	}
}

// IAM returns an IAM client using the connection's credentials.
func (c *Conn) IAM(ctx context.Context) (*iam.Client, error) {
	cfg, err := c.Config(ctx)
	if err != nil {
		return nil, err
	}
	ep := c.endpointOption(ServiceIAM)
	return iam.NewFromConfig(cfg, func(o *iam.Options) { ep(o) }), nil
}

// STS returns an STS client using the connection's credentials.
func (c *Conn) STS(ctx context.Context) (*sts.Client, error) {
	cfg, err := c.Config(ctx)
	if err != nil {
		return nil, err
	}
	ep := c.endpointOption(ServiceSTS)
	return sts.NewFromConfig(cfg, func(o *sts.Options) { ep(o) }), nil
}

// SecretsManager returns a Secrets Manager client using the connection's
// credentials.
func (c *Conn) SecretsManager(ctx context.Context) (*secretsmanager.Client, error) {
	cfg, err := c.Config(ctx)
	if err != nil {
		return nil, err
	}
	ep := c.endpointOption(ServiceSecretsManager)
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { ep(o) }), nil
}

// STSWithCredentials returns an STS client that uses the connection's
// region, endpoint and HTTP client but the given credentials, never the
// connection's own. It does not load the credential chain. maxAttempts
// bounds the SDK's retries (1: a single attempt). The clients share one
// HTTP client, so repeated probes reuse connections.
func (c *Conn) STSWithCredentials(creds aws.CredentialsProvider, maxAttempts int) *sts.Client {
	region := c.Region()
	if region == "" {
		region = "us-east-1"
	}
	o := sts.Options{
		Region:      region,
		Credentials: creds,
		Retryer:     c.Retryer(maxAttempts),
	}
	if e := c.Endpoint(ServiceSTS); e != "" {
		o.BaseEndpoint = aws.String(e)
	}
	c.keyHTTPOnce.Do(func() {
		if c.opts.HTTPClient != nil {
			c.keyHTTP = c.opts.HTTPClient
		} else {
			c.keyHTTP = awshttp.NewBuildableClient()
		}
	})
	o.HTTPClient = c.keyHTTP
	return sts.New(o)
}
