package aws

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
)

func init() {
	plugin.ConnectionKinds.Register(Kind, Factory)
}

type blockConfig struct {
	Region                 string            `hcl:"region,optional"`
	Profile                string            `hcl:"profile,optional"`
	Endpoint               string            `hcl:"endpoint,optional"`
	IAMEndpoint            string            `hcl:"iam_endpoint,optional"`
	STSEndpoint            string            `hcl:"sts_endpoint,optional"`
	SecretsManagerEndpoint string            `hcl:"secretsmanager_endpoint,optional"`
	MaxAttempts            *int              `hcl:"max_attempts,optional"`
	AssumeRole             *assumeRoleConfig `hcl:"assume_role,block"`

	EndpointRange               hcl.Range `hcl:"endpoint,attr_range"`
	IAMEndpointRange            hcl.Range `hcl:"iam_endpoint,attr_range"`
	STSEndpointRange            hcl.Range `hcl:"sts_endpoint,attr_range"`
	SecretsManagerEndpointRange hcl.Range `hcl:"secretsmanager_endpoint,attr_range"`
	MaxAttemptsRange            hcl.Range `hcl:"max_attempts,attr_range"`
}

type assumeRoleConfig struct {
	RoleARN     string `hcl:"role_arn"`
	ExternalID  string `hcl:"external_id,optional"`
	SessionName string `hcl:"session_name,optional"`
	Duration    string `hcl:"duration,optional"`

	DefRange         hcl.Range `hcl:",def_range"`
	RoleARNRange     hcl.Range `hcl:"role_arn,attr_range"`
	SessionNameRange hcl.Range `hcl:"session_name,attr_range"`
	DurationRange    hcl.Range `hcl:"duration,attr_range"`
}

// credentialAttributes are names operators might try; they get a
// diagnostic that explains where credentials come from instead.
var credentialAttributes = []string{
	"access_key", "access_key_id", "secret_key", "secret_access_key",
	"session_token", "aws_access_key_id", "aws_secret_access_key",
}

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// Factory decodes an `aws "NAME" { ... }` block into a *Conn. It does no
// I/O: the credential chain is resolved on first use.
func Factory(env *plugin.Env, name string, body hcl.Body) (any, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	schema := &hcl.BodySchema{}
	for _, n := range credentialAttributes {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: n})
	}
	content, rest, _ := body.PartialContent(schema)
	for _, n := range credentialAttributes {
		if a, ok := content.Attributes[n]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Credentials do not belong in policy files",
				Detail: fmt.Sprintf("Remove %q. An aws connection takes its credentials from the standard chain: "+
					"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in rekey's environment, the shared config and credentials files "+
					"(select one with profile = \"...\"), web identity, or the container or instance role; "+
					"add an assume_role block to act as another role.", n),
				Subject: a.NameRange.Ptr(),
			})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	var cfg blockConfig
	if d := env.Decode(rest, &cfg); d.HasErrors() {
		return nil, d
	}
	opts := Options{
		Name:                   name,
		Region:                 cfg.Region,
		Profile:                cfg.Profile,
		Endpoint:               cfg.Endpoint,
		IAMEndpoint:            cfg.IAMEndpoint,
		STSEndpoint:            cfg.STSEndpoint,
		SecretsManagerEndpoint: cfg.SecretsManagerEndpoint,
	}
	if cfg.Region == "" && os.Getenv("AWS_REGION") == "" {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing region",
			Detail:   fmt.Sprintf("Set region in the aws %q block (for example region = \"eu-central-1\"), or AWS_REGION in rekey's environment.", name),
			Subject:  env.DefRange.Ptr(),
		})
	}
	for _, e := range []struct {
		attr, val string
		rng       hcl.Range
	}{
		{"endpoint", cfg.Endpoint, cfg.EndpointRange},
		{"iam_endpoint", cfg.IAMEndpoint, cfg.IAMEndpointRange},
		{"sts_endpoint", cfg.STSEndpoint, cfg.STSEndpointRange},
		{"secretsmanager_endpoint", cfg.SecretsManagerEndpoint, cfg.SecretsManagerEndpointRange},
	} {
		if e.val == "" {
			continue
		}
		if u, err := url.Parse(e.val); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid endpoint",
				Detail:   fmt.Sprintf("%s must be an http or https URL such as \"https://secretsmanager.eu-central-1.amazonaws.com\"; got %q.", e.attr, e.val),
				Subject:  e.rng.Ptr(),
			})
		}
	}
	if cfg.MaxAttempts != nil {
		if *cfg.MaxAttempts < 1 || *cfg.MaxAttempts > 20 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid max_attempts",
				Detail:   fmt.Sprintf("max_attempts must be between 1 and 20 (default %d); got %d.", DefaultMaxAttempts, *cfg.MaxAttempts),
				Subject:  cfg.MaxAttemptsRange.Ptr(),
			})
		}
		opts.MaxAttempts = *cfg.MaxAttempts
	}
	if ar := cfg.AssumeRole; ar != nil {
		role := &AssumeRole{RoleARN: ar.RoleARN, ExternalID: ar.ExternalID, SessionName: ar.SessionName}
		if !strings.HasPrefix(ar.RoleARN, "arn:") || !strings.Contains(ar.RoleARN, ":role/") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid role_arn",
				Detail:   fmt.Sprintf("role_arn must be an IAM role ARN such as \"arn:aws:iam::123456789012:role/rekey\"; got %q.", ar.RoleARN),
				Subject:  ar.RoleARNRange.Ptr(),
			})
		}
		if ar.SessionName != "" && !sessionNameRE.MatchString(ar.SessionName) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid session_name",
				Detail:   "session_name must be 2 to 64 characters of letters, digits and +=,.@_-.",
				Subject:  ar.SessionNameRange.Ptr(),
			})
		}
		if ar.Duration != "" {
			d, err := duration.Parse(ar.Duration)
			if err != nil || d < 15*time.Minute || d > 12*time.Hour {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid duration",
					Detail:   fmt.Sprintf("duration must be a duration between \"15m\" and \"12h\" (AWS's limits for a role session); got %q.", ar.Duration),
					Subject:  ar.DurationRange.Ptr(),
				})
			}
			role.Duration = d
		}
		opts.AssumeRole = role
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return New(opts), diags
}

// Resolve resolves a plugin's `connection = aws.NAME` attribute to the
// connection declared at the top level.
func Resolve(env *plugin.Env, expr hcl.Expression) (*Conn, hcl.Diagnostics) {
	v, diags := env.Connection(expr, Kind)
	if diags.HasErrors() {
		return nil, diags
	}
	c, ok := v.(*Conn)
	if !ok {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid connection reference",
			Detail:   "The reference does not name an aws connection block.",
			Subject:  expr.Range().Ptr(),
		}}
	}
	return c, nil
}
