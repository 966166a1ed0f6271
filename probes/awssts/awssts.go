// Package awssts implements the aws_sts probe: sts:GetCallerIdentity signed
// with the new access key, which proves that AWS accepts the key. It needs
// no permission: every valid key may call GetCallerIdentity.
//
// New IAM keys are eventually consistent: for some seconds after creation
// AWS may answer InvalidClientTokenId. That is an ordinary failed attempt,
// which the engine retries with backoff up to the probe's timeout.
package awssts

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/hashicorp/hcl/v2"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the probe block label.
const Kind = "aws_sts"

// Default field names of the key value.
const (
	DefaultAccessKeyIDField     = "access_key_id"
	DefaultSecretAccessKeyField = "secret_access_key"
)

func init() {
	probes.Register(Kind, New)
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

type config struct {
	Connection           hcl.Expression `hcl:"connection,optional"`
	AccessKeyIDField     string         `hcl:"access_key_id_field,optional"`
	SecretAccessKeyField string         `hcl:"secret_access_key_field,optional"`
	ExpectARN            string         `hcl:"expect_arn,optional"`
	ExpectAccount        string         `hcl:"expect_account,optional"`

	ExpectARNRange     hcl.Range `hcl:"expect_arn,attr_range"`
	ExpectAccountRange hcl.Range `hcl:"expect_account,attr_range"`
}

// Options configure a probe built in Go rather than HCL.
type Options struct {
	// Conn supplies region, STS endpoint and HTTP client, never its
	// credentials. Nil means the public STS endpoint of AWS_REGION (or
	// us-east-1).
	Conn *awsconn.Conn
	// AccessKeyIDField and SecretAccessKeyField name the key's fields
	// (defaults access_key_id and secret_access_key).
	AccessKeyIDField     string
	SecretAccessKeyField string
	// ExpectARN and ExpectAccount, when set, must match the caller identity.
	ExpectARN     string
	ExpectAccount string
}

// Probe checks a key with sts:GetCallerIdentity.
type Probe struct {
	opts Options
}

// New decodes an aws_sts probe block.
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	var diags hcl.Diagnostics
	opts := Options{
		AccessKeyIDField:     cfg.AccessKeyIDField,
		SecretAccessKeyField: cfg.SecretAccessKeyField,
		ExpectARN:            cfg.ExpectARN,
		ExpectAccount:        cfg.ExpectAccount,
	}
	if cfg.Connection != nil {
		if v, vd := cfg.Connection.Value(nil); !vd.HasErrors() && v.IsNull() {
			cfg.Connection = nil
		}
	}
	if cfg.Connection != nil {
		conn, d := awsconn.Resolve(env, cfg.Connection)
		diags = append(diags, d...)
		opts.Conn = conn
	}
	if cfg.ExpectARN != "" && (!strings.HasPrefix(cfg.ExpectARN, "arn:") || strings.Count(cfg.ExpectARN, ":") < 5) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid expect_arn",
			Detail:   fmt.Sprintf("expect_arn must be the ARN that GetCallerIdentity returns for the key's user, such as \"arn:aws:iam::123456789012:user/svc-payments\"; got %q.", cfg.ExpectARN),
			Subject:  cfg.ExpectARNRange.Ptr(),
		})
	}
	if cfg.ExpectAccount != "" && !accountRE.MatchString(cfg.ExpectAccount) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid expect_account",
			Detail:   fmt.Sprintf("expect_account must be a 12-digit AWS account id, written as a string; got %q.", cfg.ExpectAccount),
			Subject:  cfg.ExpectAccountRange.Ptr(),
		})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return NewProbe(opts), diags
}

// NewProbe returns a probe for callers that configure it in Go.
func NewProbe(opts Options) *Probe {
	if opts.AccessKeyIDField == "" {
		opts.AccessKeyIDField = DefaultAccessKeyIDField
	}
	if opts.SecretAccessKeyField == "" {
		opts.SecretAccessKeyField = DefaultSecretAccessKeyField
	}
	if opts.Conn == nil {
		opts.Conn = awsconn.New(awsconn.Options{Name: "default", Region: os.Getenv("AWS_REGION")})
	}
	return &Probe{opts: opts}
}

// DefaultTarget implements probes.Targeter: the probe tests the key itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

// Check implements probes.Probe with one GetCallerIdentity call signed with
// key. A key AWS does not (yet) accept is a retryable failure; a caller
// identity other than the one expected is permanent.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	id, sec := key.Value[p.opts.AccessKeyIDField], key.Value[p.opts.SecretAccessKeyField]
	if id.IsZero() || sec.IsZero() {
		return plugin.Permanent(fmt.Errorf("key %s has no fields %q and %q (it has %s); set access_key_id_field and secret_access_key_field",
			secret.Mask(key.ID), p.opts.AccessKeyIDField, p.opts.SecretAccessKeyField, strings.Join(key.Value.Names(), ", ")))
	}
	creds := credentials.NewStaticCredentialsProvider(id.Reveal(), sec.Reveal(), "")
	out, err := p.opts.Conn.STSWithCredentials(creds, 1).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return awsconn.Redact(fmt.Errorf("calling sts:GetCallerIdentity with key %s: %w", secret.Mask(id.Reveal()), err),
			[]string{id.Reveal()}, []string{sec.Reveal()})
	}
	arn, account := aws.ToString(out.Arn), aws.ToString(out.Account)
	if p.opts.ExpectARN != "" && arn != p.opts.ExpectARN {
		return plugin.Permanent(fmt.Errorf("key %s belongs to %s, not to %s as expect_arn says; check the provider's user and expect_arn", secret.Mask(id.Reveal()), arn, p.opts.ExpectARN))
	}
	if p.opts.ExpectAccount != "" && account != p.opts.ExpectAccount {
		return plugin.Permanent(fmt.Errorf("key %s belongs to account %s, not to %s as expect_account says", secret.Mask(id.Reveal()), account, p.opts.ExpectAccount))
	}
	return nil
}
