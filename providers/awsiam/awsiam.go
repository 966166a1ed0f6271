// Package awsiam implements the aws_iam provider: the access keys of one
// IAM user.
//
// IAM allows two access keys per user, inactive ones included, which is
// exactly enough for a rotation: the key in use and its successor. IAM
// keys cannot carry a tag or name, so the provider cannot tell which
// rotation made a key; after a crash the engine recognises an orphan as a
// key created after the rotation's journaled intent.
package awsiam

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/hashicorp/hcl/v2"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the provider block label.
const Kind = "aws_iam"

// Field names of the key value.
const (
	FieldAccessKeyID     = "access_key_id"
	FieldSecretAccessKey = "secret_access_key"
)

// MaxKeys is IAM's limit of access keys per user, inactive keys included.
const MaxKeys = 2

// DefaultUsageDelay is how late IAM may record the last use of an access
// key. AWS documents that recent activity "usually appears within four
// hours" in IAM's last-accessed data; the engine waits at least this long
// after commit before it trusts GetAccessKeyLastUsed to show no use.
const DefaultUsageDelay = 4 * time.Hour

// DefaultPropagationDelay is how long the provider allows a deactivation
// or deletion to take effect. IAM is eventually consistent: AWS documents
// that changes "are not always immediately visible" (IAM User Guide,
// "Troubleshoot IAM", https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency)
// but gives no bound; a deactivated key commonly keeps working for
// seconds. The soak counts no dependent probe as evidence until this long
// after the deactivation.
const DefaultPropagationDelay = time.Minute

// LastUsedResolution is the resolution of GetAccessKeyLastUsed: the IAM API
// Reference's example shows "LastUsedDate": "2015-06-16T22:45:00Z", a date
// rounded down to the minute.
const LastUsedResolution = time.Minute

func init() {
	providers.Register(Kind, New)
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.Lister        = (*Provider)(nil)
	_ providers.Capacity      = (*Provider)(nil)
	_ providers.Deactivator   = (*Provider)(nil)
	_ providers.UsageReporter = (*Provider)(nil)
	_ providers.Propagator    = (*Provider)(nil)
)

// userNameRE is compiled at first use, not at start.
var userNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{1,64}$`) })

type config struct {
	Connection  hcl.Expression `hcl:"connection"`
	User        string         `hcl:"user"`
	UsageDelay  string         `hcl:"usage_delay,optional"`
	Propagation string         `hcl:"propagation_delay,optional"`

	UserRange        hcl.Range `hcl:"user,attr_range"`
	UsageDelayRange  hcl.Range `hcl:"usage_delay,attr_range"`
	PropagationRange hcl.Range `hcl:"propagation_delay,attr_range"`
}

// Provider manages the access keys of one IAM user.
type Provider struct {
	conn        *awsconn.Conn
	user        string
	usageDelay  time.Duration
	propagation time.Duration
}

// New decodes an aws_iam provider block.
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	conn, diags := awsconn.Resolve(env, cfg.Connection)
	if !userNameRE().MatchString(cfg.User) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid user",
			Detail:   "user must be an IAM user name (1 to 64 letters, digits and +=,.@_-), without a path; for example user = \"svc-payments\".",
			Subject:  cfg.UserRange.Ptr(),
		})
	}
	delay := DefaultUsageDelay
	if cfg.UsageDelay != "" {
		d, err := duration.Parse(cfg.UsageDelay)
		if err != nil || d < 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid usage_delay",
				Detail:   fmt.Sprintf("usage_delay must be a duration such as \"4h\" (the default; AWS says recent use usually appears within four hours); got %q.", cfg.UsageDelay),
				Subject:  cfg.UsageDelayRange.Ptr(),
			})
		}
		delay = d
	}
	propagation := DefaultPropagationDelay
	if cfg.Propagation != "" {
		d, err := duration.Parse(cfg.Propagation)
		if err != nil || d < 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid propagation_delay",
				Detail:   fmt.Sprintf("propagation_delay must be a duration such as \"1m\" (the default): how long a deactivated IAM key may keep working; got %q.", cfg.Propagation),
				Subject:  cfg.PropagationRange.Ptr(),
			})
		}
		propagation = d
	}
	if diags.HasErrors() {
		return nil, diags
	}
	p := NewProvider(conn, cfg.User, delay)
	p.propagation = propagation
	return p, diags
}

// NewProvider returns a provider for the access keys of user, for callers
// that configure it in Go rather than HCL. A negative usageDelay means
// DefaultUsageDelay.
func NewProvider(conn *awsconn.Conn, user string, usageDelay time.Duration) *Provider {
	if usageDelay < 0 {
		usageDelay = DefaultUsageDelay
	}
	return &Provider{conn: conn, user: user, usageDelay: usageDelay, propagation: DefaultPropagationDelay}
}

// WithPropagationDelay sets how long a deactivation or deletion may take to
// take effect (DefaultPropagationDelay unless set), and returns p.
func (p *Provider) WithPropagationDelay(d time.Duration) *Provider {
	p.propagation = d
	return p
}

// PropagationDelay implements providers.Propagator.
func (p *Provider) PropagationDelay() time.Duration { return p.propagation }

// Target implements providers.Provider: "aws_iam:CONNECTION:USER".
func (p *Provider) Target() string { return Kind + ":" + p.conn.Name() + ":" + p.user }

func (p *Provider) client(ctx context.Context) (*iam.Client, error) {
	c, err := p.conn.IAM(ctx)
	if err != nil {
		return nil, plugin.Permanent(err)
	}
	return c, nil
}

// Create implements providers.Provider with iam:CreateAccessKey. When the
// user already has two keys it returns an error wrapping plugin.ErrLimit
// that lists them (masked) with their status and last use.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, err := p.client(ctx)
	if err != nil {
		return plugin.Key{}, err
	}
	out, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(p.user)})
	if err != nil {
		var le *types.LimitExceededException
		if errors.As(err, &le) {
			return plugin.Key{}, p.limitError(ctx, c)
		}
		return plugin.Key{}, fmt.Errorf("creating access key for IAM user %q: %w", p.user, awsconn.Classify(err))
	}
	ak := out.AccessKey
	if ak == nil || aws.ToString(ak.AccessKeyId) == "" || aws.ToString(ak.SecretAccessKey) == "" {
		return plugin.Key{}, fmt.Errorf("creating access key for IAM user %q: the response carried no key", p.user)
	}
	return plugin.Key{
		ID: aws.ToString(ak.AccessKeyId),
		Value: secret.Fields{
			FieldAccessKeyID:     secret.New(aws.ToString(ak.AccessKeyId)),
			FieldSecretAccessKey: secret.New(aws.ToString(ak.SecretAccessKey)),
		},
		CreatedAt: aws.ToTime(ak.CreateDate),
	}, nil
}

func (p *Provider) limitError(ctx context.Context, c *iam.Client) error {
	var b strings.Builder
	fmt.Fprintf(&b, "IAM user %q already has %d access keys, the most IAM allows", p.user, MaxKeys)
	keys, err := p.list(ctx, c)
	if err != nil {
		fmt.Fprintf(&b, " (listing them failed: %v)", err)
	}
	var ids []string
	for i, k := range keys {
		ids = append(ids, k.ID)
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s (%s, created %s, ", sep, secret.Mask(k.ID), k.Status, k.CreatedAt.UTC().Format(time.RFC3339))
		lu, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(k.ID)})
		switch {
		case err != nil:
			b.WriteString("last use unknown")
		case lu.AccessKeyLastUsed == nil || lu.AccessKeyLastUsed.LastUsedDate == nil:
			b.WriteString("never used")
		default:
			u := lu.AccessKeyLastUsed
			fmt.Fprintf(&b, "last used %s with %s in %s", u.LastUsedDate.UTC().Format(time.RFC3339),
				aws.ToString(u.ServiceName), aws.ToString(u.Region))
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ". Delete, or let rekey retire, the key that no dependent uses after confirming it is unused "+
		"(last use above, with up to %s of delay; CloudTrail has the detail): "+
		"aws iam delete-access-key --user-name %s --access-key-id <id>", p.usageDelay, p.user)
	return awsconn.Redact(fmt.Errorf("creating access key: %w: %s", plugin.ErrLimit, b.String()), ids, nil)
}

// Delete implements providers.Provider with iam:DeleteAccessKey; a key that
// does not exist is not an error.
func (p *Provider) Delete(ctx context.Context, keyID string) error {
	c, err := p.client(ctx)
	if err != nil {
		return err
	}
	_, err = c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(p.user), AccessKeyId: aws.String(keyID)})
	if awsconn.ErrorCode(err) == "NoSuchEntity" {
		return nil
	}
	return p.keyError("deleting", keyID, err)
}

// List implements providers.Lister with iam:ListAccessKeys. RotationID is
// always empty: IAM access keys carry no name or tag.
func (p *Provider) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := p.list(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("listing access keys of IAM user %q: %w", p.user, err)
	}
	return keys, nil
}

func (p *Provider) list(ctx context.Context, c *iam.Client) ([]plugin.KeyInfo, error) {
	var keys []plugin.KeyInfo
	pages := iam.NewListAccessKeysPaginator(c, &iam.ListAccessKeysInput{UserName: aws.String(p.user)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awsconn.Classify(err)
		}
		for _, m := range page.AccessKeyMetadata {
			status := plugin.KeyInactive
			if m.Status == types.StatusTypeActive {
				status = plugin.KeyActive
			}
			keys = append(keys, plugin.KeyInfo{
				ID:        aws.ToString(m.AccessKeyId),
				Status:    status,
				CreatedAt: aws.ToTime(m.CreateDate),
			})
		}
	}
	return keys, nil
}

// MaxKeys implements providers.Capacity.
func (p *Provider) MaxKeys() int { return MaxKeys }

// Deactivate implements providers.Deactivator: the key's status becomes
// Inactive; requests signed with it fail, once the change has propagated
// (see PropagationDelay), until it is activated again.
func (p *Provider) Deactivate(ctx context.Context, keyID string) error {
	return p.setStatus(ctx, keyID, types.StatusTypeInactive)
}

// Activate implements providers.Deactivator.
func (p *Provider) Activate(ctx context.Context, keyID string) error {
	return p.setStatus(ctx, keyID, types.StatusTypeActive)
}

func (p *Provider) setStatus(ctx context.Context, keyID string, st types.StatusType) error {
	c, err := p.client(ctx)
	if err != nil {
		return err
	}
	_, err = c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{
		UserName: aws.String(p.user), AccessKeyId: aws.String(keyID), Status: st,
	})
	verb := "deactivating"
	if st == types.StatusTypeActive {
		verb = "activating"
	}
	return p.keyError(verb, keyID, err)
}

// LastUsed implements providers.UsageReporter with
// iam:GetAccessKeyLastUsed; the zero time means never used. IAM reports the
// date rounded down to the minute, so LastUsed returns the latest instant
// the use may have happened: the end of that minute. A use in the minute of
// the commit thus counts as a use after the commit (still in use), never
// as one before it.
func (p *Provider) LastUsed(ctx context.Context, keyID string) (time.Time, error) {
	c, err := p.client(ctx)
	if err != nil {
		return time.Time{}, err
	}
	out, err := c.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(keyID)})
	if err != nil {
		return time.Time{}, p.keyError("reading the last use of", keyID, err)
	}
	if out.AccessKeyLastUsed == nil || out.AccessKeyLastUsed.LastUsedDate == nil {
		return time.Time{}, nil
	}
	return out.AccessKeyLastUsed.LastUsedDate.Add(LastUsedResolution - time.Nanosecond), nil
}

// UsageReportingDelay implements providers.UsageReporter.
func (p *Provider) UsageReportingDelay() time.Duration { return p.usageDelay }

// keyError wraps an error of a call about one key, masking the key id
// wherever the error text carries it.
func (p *Provider) keyError(verb, keyID string, err error) error {
	if err == nil {
		return nil
	}
	// Matched by code: GetAccessKeyLastUsed models no NoSuchEntity type.
	if awsconn.ErrorCode(err) == "NoSuchEntity" {
		err = plugin.Permanent(fmt.Errorf("%w: %w", plugin.ErrNotFound, err))
	} else {
		err = awsconn.Classify(err)
	}
	return awsconn.Redact(fmt.Errorf("%s access key %s of IAM user %q: %w", verb, secret.Mask(keyID), p.user, err), []string{keyID}, nil)
}
