// Package awssm implements the aws_secretsmanager sink: one AWS Secrets
// Manager secret, written with Secrets Manager's own rotation protocol.
//
// Stage writes the new value as a version labelled AWSPENDING, with the
// rotation id as ClientRequestToken (so the version id is derived from the
// rotation and a repeated call is a no-op). Promote moves AWSCURRENT to it
// from the version that was current when the rotation started (Secrets
// Manager refuses the move if AWSCURRENT is elsewhere, which makes it a
// check-and-set), AWSPREVIOUS follows, AWSPENDING is removed, and the
// value is read back and compared. Rollback moves AWSCURRENT back.
package awssm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/hashicorp/hcl/v2"

	awsconn "github.com/rekeyhq/rekey/connections/aws"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Kind is the sink block label.
const Kind = "aws_secretsmanager"

// Staging labels of Secrets Manager's rotation protocol.
const (
	StageCurrent  = "AWSCURRENT"
	StagePending  = "AWSPENDING"
	StagePrevious = "AWSPREVIOUS"
)

// Value formats.
const (
	FormatJSON     = "json"
	FormatTemplate = "template"
	// FormatRDS writes the JSON structure of AWS's own database secrets
	// (engine, host, username, password, dbname, port), which RDS-managed
	// secrets, the Secrets Manager rotation functions and the AWS database
	// drivers read.
	FormatRDS = "rds"
)

// Limits of Secrets Manager that the sink checks before sending: AWS
// Secrets Manager User Guide, "AWS Secrets Manager quotas" and the API
// Reference of CreateSecret and PutSecretValue.
const (
	// MaxValueBytes is the largest SecretString: "Secret value size:
	// 65,536 bytes".
	MaxValueBytes = 65536
	// MaxNameLength is the longest secret name: CreateSecret, Name,
	// "Maximum length of 512".
	MaxNameLength = 512
	// MaxSecretIDLength is the longest SecretId (a name or an ARN).
	MaxSecretIDLength = 2048
)

// QuotasURL documents the limits above.
const QuotasURL = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html"

// ValidName reports whether name is a valid secret name: 1 to 512 ASCII
// letters, digits and /_+=.@- (CreateSecret, Name).
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameLength {
		return false
	}
	return strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-") == ""
}

func init() {
	sinks.Register(Kind, New)
}

var _ sinks.Sink = (*Sink)(nil)

type config struct {
	Connection      hcl.Expression `hcl:"connection"`
	SecretID        string         `hcl:"secret_id"`
	CreateIfMissing bool           `hcl:"create_if_missing,optional"`
	KMSKeyID        string         `hcl:"kms_key_id,optional"`
	Description     string         `hcl:"description,optional"`
	Format          string         `hcl:"format,optional"`
	Template        *string        `hcl:"template,optional"`
	Engine          string         `hcl:"engine,optional"`

	SecretIDRange        hcl.Range `hcl:"secret_id,attr_range"`
	CreateIfMissingRange hcl.Range `hcl:"create_if_missing,attr_range"`
	KMSKeyIDRange        hcl.Range `hcl:"kms_key_id,attr_range"`
	DescriptionRange     hcl.Range `hcl:"description,attr_range"`
	FormatRange          hcl.Range `hcl:"format,attr_range"`
	TemplateRange        hcl.Range `hcl:"template,attr_range"`
	EngineRange          hcl.Range `hcl:"engine,attr_range"`
}

// Options configure a sink built in Go rather than HCL.
type Options struct {
	// SecretID is the secret's name or ARN.
	SecretID string
	// CreateIfMissing creates the secret (by name) at the first Stage.
	CreateIfMissing bool
	// KMSKeyID and Description are used when the secret is created.
	KMSKeyID    string
	Description string
	// Template renders the value; nil writes the fields as a JSON object.
	Template *template.Template
	// RDS writes AWS's database secret structure (FormatRDS) instead of the
	// fields.
	RDS bool
	// Engine is the structure's engine ("postgres", "mysql", ...); empty
	// takes the key's engine field.
	Engine string
}

// Sink writes a key to one Secrets Manager secret.
type Sink struct {
	conn *awsconn.Conn
	opts Options
}

// New decodes an aws_secretsmanager sink block.
func New(env *plugin.Env, body hcl.Body) (sinks.Sink, hcl.Diagnostics) {
	var cfg config
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	conn, diags := awsconn.Resolve(env, cfg.Connection)
	isARN := strings.HasPrefix(cfg.SecretID, "arn:")
	switch {
	case cfg.SecretID == "" || len(cfg.SecretID) > MaxSecretIDLength || !isARN && !ValidName(cfg.SecretID):
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid secret_id",
			Detail: fmt.Sprintf("secret_id must be the name or ARN of a Secrets Manager secret, such as \"payments/aws\"; a name has 1 to %d ASCII letters, digits and /_+=.@- (%s); got %q.",
				MaxNameLength, "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html", cfg.SecretID),
			Subject: cfg.SecretIDRange.Ptr(),
		})
	case cfg.CreateIfMissing && isARN:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "create_if_missing needs a secret name",
			Detail:   "A secret can only be created by name: set secret_id to the name (such as \"payments/aws\") or create the secret yourself and drop create_if_missing.",
			Subject:  cfg.CreateIfMissingRange.Ptr(),
		})
	}
	if !cfg.CreateIfMissing {
		for _, a := range []struct {
			name, val string
			rng       hcl.Range
		}{{"kms_key_id", cfg.KMSKeyID, cfg.KMSKeyIDRange}, {"description", cfg.Description, cfg.DescriptionRange}} {
			if a.val != "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Option has no effect",
					Detail:   fmt.Sprintf("%s is used only when rekey creates the secret; set create_if_missing = true, or change the existing secret with aws secretsmanager update-secret.", a.name),
					Subject:  a.rng.Ptr(),
				})
			}
		}
	}
	opts := Options{SecretID: cfg.SecretID, CreateIfMissing: cfg.CreateIfMissing, KMSKeyID: cfg.KMSKeyID, Description: cfg.Description}
	format := cfg.Format
	if format == "" {
		format = FormatJSON
		if cfg.Template != nil {
			format = FormatTemplate
		}
	}
	switch format {
	case FormatJSON:
		if cfg.Template != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "template needs format = \"template\"",
				Detail:   "Remove format = \"json\" to render the value with the template, or remove the template to write the fields as a JSON object.",
				Subject:  cfg.TemplateRange.Ptr(),
			})
		}
	case FormatTemplate:
		if cfg.Template == nil || *cfg.Template == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing template",
				Detail:   "format = \"template\" needs a template, a Go text/template over the key's fields, such as template = \"{{.access_key_id}}:{{.secret_access_key}}\".",
				Subject:  cfg.FormatRange.Ptr(),
			})
			break
		}
		t, err := template.New(cfg.SecretID).Option("missingkey=error").Parse(*cfg.Template)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid template",
				Detail:   fmt.Sprintf("The template does not parse: %v. It is a Go text/template; fields are written {{.access_key_id}}.", err),
				Subject:  cfg.TemplateRange.Ptr(),
			})
			break
		}
		opts.Template = t
	case FormatRDS:
		if cfg.Template != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "template needs format = \"template\"",
				Detail:   "format = \"rds\" writes AWS's database secret structure; remove the template, or set format = \"template\".",
				Subject:  cfg.TemplateRange.Ptr(),
			})
		}
		opts.RDS, opts.Engine = true, cfg.Engine
	default:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid format",
			Detail:   fmt.Sprintf("format must be \"json\" (the default: the fields as one JSON object), \"template\" or \"rds\" (AWS's database secret structure); got %q.", cfg.Format),
			Subject:  cfg.FormatRange.Ptr(),
		})
	}
	if cfg.Engine != "" && format != FormatRDS {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "engine needs format = \"rds\"",
			Detail:   "engine is written only in AWS's database secret structure: add format = \"rds\", or remove engine.",
			Subject:  cfg.EngineRange.Ptr(),
		})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return NewSink(conn, opts), diags
}

// NewSink returns a sink for callers that configure it in Go.
func NewSink(conn *awsconn.Conn, opts Options) *Sink {
	return &Sink{conn: conn, opts: opts}
}

// Location implements sinks.Sink: "aws_secretsmanager:CONNECTION:SECRET_ID".
func (s *Sink) Location() string { return Kind + ":" + s.conn.Name() + ":" + s.opts.SecretID }

// ClientRequestToken returns the Secrets Manager ClientRequestToken, and so
// the version id, that a rotation writes. Secrets Manager requires 32 to 64
// characters; a rotation id that fits (letters, digits and dashes) is used
// as it is, any other is mapped deterministically to a UUID-formatted
// SHA-256 digest of it.
func ClientRequestToken(rotationID string) string {
	if l := len(rotationID); l >= 32 && l <= 64 && strings.Trim(rotationID,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == "" {
		return rotationID
	}
	sum := sha256.Sum256([]byte("rekey aws_secretsmanager ClientRequestToken\x00" + rotationID))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80 // UUID version 8: custom, name-based
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (s *Sink) client(ctx context.Context) (*secretsmanager.Client, error) {
	c, err := s.conn.SecretsManager(ctx)
	if err != nil {
		return nil, plugin.Permanent(err)
	}
	return c, nil
}

// labels is a secret's VersionIdsToStages, or nil when it does not exist.
type labels struct {
	exists   bool
	deleted  bool
	versions map[string][]string
}

func (l labels) holder(stage string) string {
	for id, stages := range l.versions {
		for _, st := range stages {
			if st == stage {
				return id
			}
		}
	}
	return ""
}

func (l labels) has(version, stage string) bool {
	for _, st := range l.versions[version] {
		if st == stage {
			return true
		}
	}
	return false
}

func (s *Sink) describe(ctx context.Context, c *secretsmanager.Client) (labels, error) {
	out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.opts.SecretID)})
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return labels{}, nil
		}
		return labels{}, fmt.Errorf("describing secret %q: %w", s.opts.SecretID, awsconn.Classify(err))
	}
	return labels{exists: true, deleted: out.DeletedDate != nil, versions: out.VersionIdsToStages}, nil
}

// Current implements sinks.Sink: the version id labelled AWSCURRENT, or ""
// when the secret does not exist.
func (s *Sink) Current(ctx context.Context) (sinks.Version, error) {
	c, err := s.client(ctx)
	if err != nil {
		return "", err
	}
	l, err := s.describe(ctx, c)
	if err != nil {
		return "", err
	}
	return sinks.Version(l.holder(StageCurrent)), nil
}

func (s *Sink) render(key plugin.Key) ([]byte, error) {
	if len(key.Value) == 0 {
		return nil, plugin.Permanent(fmt.Errorf("key %s has no value to write (values are never stored; a rotation resumed after a restart must be rolled back)", secret.Mask(key.ID)))
	}
	fields := key.Value.Reveal()
	if s.opts.RDS {
		return s.renderRDS(key, fields)
	}
	if s.opts.Template == nil {
		b, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("encoding the value as JSON: %w", err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	if err := s.opts.Template.Execute(&buf, fields); err != nil {
		vals := make([]string, 0, len(fields))
		for _, v := range fields {
			vals = append(vals, v)
		}
		return nil, plugin.Permanent(awsconn.Redact(fmt.Errorf("rendering the template for secret %q (fields available: %s): %w",
			s.opts.SecretID, strings.Join(key.Value.Names(), ", "), err), nil, vals))
	}
	return buf.Bytes(), nil
}

// rdsSecret is the JSON structure of AWS's database secrets, in AWS's
// field order (Secrets Manager User Guide, "JSON structure of AWS Secrets
// Manager secrets", Amazon RDS and Aurora credentials:
// https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_secret_json_structure.html).
type rdsSecret struct {
	Engine   string      `json:"engine"`
	Host     string      `json:"host,omitempty"`
	Username string      `json:"username"`
	Password string      `json:"password"`
	DBName   string      `json:"dbname,omitempty"`
	Port     json.Number `json:"port,omitempty"`
}

func (s *Sink) renderRDS(key plugin.Key, f map[string]string) ([]byte, error) {
	engine := s.opts.Engine
	if engine == "" {
		engine = f["engine"]
	}
	if engine == "" {
		return nil, plugin.Permanent(fmt.Errorf("format \"rds\" for secret %q needs an engine: set engine = \"postgres\" (or \"mysql\", ...) in the sink, or use a provider whose key has an engine field", s.opts.SecretID))
	}
	if f["username"] == "" || f["password"] == "" {
		return nil, plugin.Permanent(fmt.Errorf("format \"rds\" for secret %q needs the fields username and password; key %s has %s (rename fields with the sink's fields option)",
			s.opts.SecretID, secret.Mask(key.ID), strings.Join(key.Value.Names(), ", ")))
	}
	port := f["port"]
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, plugin.Permanent(fmt.Errorf("format \"rds\" for secret %q: the field port is not a TCP port number; AWS's clients read it as a number", s.opts.SecretID))
		}
	}
	b, err := json.Marshal(rdsSecret{Engine: engine, Host: f["host"], Username: f["username"], Password: f["password"], DBName: f["dbname"], Port: json.Number(port)})
	if err != nil {
		return nil, fmt.Errorf("encoding the value as JSON: %w", err)
	}
	return b, nil
}

// checkLimits refuses, before anything is sent, a value Secrets Manager
// would refuse: empty, or over 65,536 bytes.
func (s *Sink) checkLimits(rot plugin.Rotation, value []byte) error {
	switch {
	case len(value) == 0:
		return plugin.Permanent(fmt.Errorf("policy %q: the value for secret %q is empty, and Secrets Manager refuses an empty secret value (%s); check the sink's template and fields",
			rot.Policy, s.opts.SecretID, "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html"))
	case len(value) > MaxValueBytes:
		return plugin.Permanent(fmt.Errorf("policy %q: the value for secret %q is %d bytes, over Secrets Manager's limit of %d bytes for a secret value (%s); write fewer fields or a shorter template",
			rot.Policy, s.opts.SecretID, len(value), MaxValueBytes, QuotasURL))
	}
	return nil
}

// deletionScheduled is the error for a secret scheduled for deletion: AWS
// refuses every read and write of it (InvalidRequestException) until it is
// restored.
func (s *Sink) deletionScheduled() error {
	return fmt.Errorf("secret %q is scheduled for deletion, and Secrets Manager refuses to read or write it: restore it (aws secretsmanager restore-secret --secret-id %s) or point secret_id elsewhere", s.opts.SecretID, s.opts.SecretID)
}

func (s *Sink) conflict(format string, args ...any) error {
	return fmt.Errorf("secret %q: %w: "+format, append([]any{s.opts.SecretID, plugin.ErrConflict}, args...)...)
}

// Stage implements sinks.Sink: PutSecretValue with ClientRequestToken
// derived from rot.ID and the label AWSPENDING. It refuses when another,
// unfinished rotation holds AWSPENDING, and returns plugin.ErrConflict when
// AWSCURRENT moved away from st.Prev. With create_if_missing it creates
// the secret first; Secrets Manager then labels the first version
// AWSCURRENT too.
func (s *Sink) Stage(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	value, err := s.render(key)
	if err != nil {
		return "", err
	}
	if err := s.checkLimits(rot, value); err != nil {
		return "", err
	}
	c, err := s.client(ctx)
	if err != nil {
		return "", err
	}
	ours := ClientRequestToken(rot.ID)
	l, err := s.describe(ctx, c)
	if err != nil {
		return "", err
	}
	switch {
	case !l.exists && st.Prev != "":
		return "", s.conflict("the secret was deleted since rekey read version %s", st.Prev)
	case !l.exists && !s.opts.CreateIfMissing:
		return "", plugin.Permanent(fmt.Errorf("secret %q: %w: create it (aws secretsmanager create-secret --name %s) or set create_if_missing = true", s.opts.SecretID, plugin.ErrNotFound, s.opts.SecretID))
	case !l.exists:
		in := &secretsmanager.CreateSecretInput{Name: aws.String(s.opts.SecretID)}
		if s.opts.Description != "" {
			in.Description = aws.String(s.opts.Description)
		}
		if s.opts.KMSKeyID != "" {
			in.KmsKeyId = aws.String(s.opts.KMSKeyID)
		}
		if _, err := c.CreateSecret(ctx, in); err != nil {
			var re *types.ResourceExistsException
			if !errors.As(err, &re) {
				return "", fmt.Errorf("creating secret %q: %w", s.opts.SecretID, awsconn.Classify(err))
			}
		}
	case l.deleted:
		return "", plugin.Permanent(s.deletionScheduled())
	}

	cur := l.holder(StageCurrent)
	if cur != string(st.Prev) && cur != ours {
		return "", s.conflict("AWSCURRENT is on version %s, not on %s that rekey read when the rotation started", cur, orNone(string(st.Prev)))
	}
	pending := l.holder(StagePending)
	if pending != "" && pending != ours && pending != cur {
		return "", plugin.Permanent(fmt.Errorf("secret %q: AWSPENDING is on version %s, which another rotation (rekey's or a Secrets Manager rotation function's) left unfinished; "+
			"finish or cancel that rotation, or if it is abandoned remove the label: "+
			"aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSPENDING --remove-from-version-id %s",
			s.opts.SecretID, pending, s.opts.SecretID, pending))
	}
	if l.has(ours, StagePending) || l.has(ours, StageCurrent) {
		return sinks.Version(ours), nil
	}

	out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(s.opts.SecretID),
		ClientRequestToken: aws.String(ours),
		SecretString:       aws.String(string(value)),
		VersionStages:      []string{StagePending},
	})
	if err != nil {
		var re *types.ResourceExistsException
		if errors.As(err, &re) {
			return "", plugin.Permanent(fmt.Errorf("secret %q: version %s of this rotation already holds another value; roll the rotation back and start a new one", s.opts.SecretID, ours))
		}
		var le *types.LimitExceededException
		if errors.As(err, &le) {
			return "", plugin.Permanent(fmt.Errorf("policy %q: secret %q is at a Secrets Manager quota (%s): most likely 100 versions per secret, where versions without a staging label are removed only once 24 hours old; rotate less often (AWS advises at most once every 10 minutes, sustained) or wait a day: %w",
				rot.Policy, s.opts.SecretID, QuotasURL, awsconn.Classify(err)))
		}
		return "", fmt.Errorf("staging a new version of secret %q: %w", s.opts.SecretID, awsconn.Classify(err))
	}
	v := aws.ToString(out.VersionId)
	if v == "" {
		v = ours
	}
	// A version left without labels by an earlier attempt is not relabelled
	// by PutSecretValue (the request is ignored); attach AWSPENDING.
	if !contains(out.VersionStages, StagePending) && !contains(out.VersionStages, StageCurrent) {
		in := &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StagePending), MoveToVersionId: aws.String(v),
		}
		if pending != "" {
			in.RemoveFromVersionId = aws.String(pending)
		}
		if _, err := c.UpdateSecretVersionStage(ctx, in); err != nil {
			return "", fmt.Errorf("labelling version %s of secret %q AWSPENDING: %w", v, s.opts.SecretID, awsconn.Classify(err))
		}
	}
	return sinks.Version(v), nil
}

// Promote implements sinks.Sink: AWSCURRENT moves from st.Prev to the
// staged version (AWSPREVIOUS follows), AWSPENDING is removed, and the
// value labelled AWSCURRENT is read back and compared with the key.
func (s *Sink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	c, err := s.client(ctx)
	if err != nil {
		return "", err
	}
	ours := string(st.Staged)
	if ours == "" {
		ours = ClientRequestToken(rot.ID)
	}
	l, err := s.describe(ctx, c)
	if err != nil {
		return "", err
	}
	if !l.exists {
		return "", s.conflict("the secret was deleted after the new value was staged")
	}
	if l.deleted {
		return "", plugin.Permanent(s.deletionScheduled())
	}
	cur := l.holder(StageCurrent)
	if cur != ours {
		if cur != string(st.Prev) {
			return "", s.conflict("AWSCURRENT is on version %s, not on %s that rekey read when the rotation started", orNone(cur), orNone(string(st.Prev)))
		}
		if _, ok := l.versions[ours]; !ok {
			return "", plugin.Permanent(fmt.Errorf("secret %q: version %s is not staged (no AWSPENDING); roll the rotation back", s.opts.SecretID, ours))
		}
		in := &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(ours),
		}
		if cur != "" {
			in.RemoveFromVersionId = aws.String(cur)
		}
		if _, err := c.UpdateSecretVersionStage(ctx, in); err != nil {
			var ip *types.InvalidParameterException
			if errors.As(err, &ip) {
				if again, derr := s.describe(ctx, c); derr == nil && again.holder(StageCurrent) != ours {
					return "", s.conflict("AWSCURRENT moved to version %s while rekey promoted", orNone(again.holder(StageCurrent)))
				}
			} else {
				return "", fmt.Errorf("moving AWSCURRENT of secret %q to version %s: %w", s.opts.SecretID, ours, awsconn.Classify(err))
			}
		}
	}
	if l.has(ours, StagePending) {
		_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StagePending), RemoveFromVersionId: aws.String(ours),
		})
		var ip *types.InvalidParameterException
		if err != nil && !errors.As(err, &ip) {
			return "", fmt.Errorf("removing AWSPENDING from version %s of secret %q: %w", ours, s.opts.SecretID, awsconn.Classify(err))
		}
	}
	if err := s.verify(ctx, c, key, ours); err != nil {
		return "", err
	}
	return sinks.Version(ours), nil
}

func (s *Sink) verify(ctx context.Context, c *secretsmanager.Client, key plugin.Key, ours string) error {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StageCurrent),
	})
	if err != nil {
		return fmt.Errorf("reading back secret %q: %w", s.opts.SecretID, awsconn.Classify(err))
	}
	if got := aws.ToString(out.VersionId); got != ours {
		return s.conflict("read back AWSCURRENT on version %s instead of %s", got, ours)
	}
	if len(key.Value) == 0 {
		return nil
	}
	var ok bool
	if s.opts.Template == nil && !s.opts.RDS {
		var m map[string]string
		if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &m) == nil {
			got := make(secret.Fields, len(m))
			for k, v := range m {
				got[k] = secret.New(v)
			}
			want, have := key.Value.Digest(), got.Digest()
			ok = subtle.ConstantTimeCompare(want[:], have[:]) == 1
		}
	} else {
		value, err := s.render(key)
		if err != nil {
			return err
		}
		want, have := sha256.Sum256(value), sha256.Sum256([]byte(aws.ToString(out.SecretString)))
		ok = subtle.ConstantTimeCompare(want[:], have[:]) == 1
	}
	if !ok {
		return plugin.Permanent(fmt.Errorf("secret %q: the value read back from version %s differs from the value written; roll the rotation back and check what else writes the secret", s.opts.SecretID, ours))
	}
	return nil
}

// Rollback implements sinks.Sink: AWSCURRENT moves back to st.Prev if this
// rotation's version holds it, and AWSPENDING is removed from that version.
// Versions are never deleted. When the secret had no current version
// before the rotation (it was created by it), AWSCURRENT stays where it is:
// Secrets Manager cannot take the label off a secret's only version.
func (s *Sink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	c, err := s.client(ctx)
	if err != nil {
		return err
	}
	ours := string(st.Staged)
	if ours == "" {
		ours = string(st.Promoted)
	}
	if ours == "" {
		ours = ClientRequestToken(rot.ID)
	}
	l, err := s.describe(ctx, c)
	if err != nil {
		return err
	}
	if !l.exists {
		if st.Prev == "" {
			return nil
		}
		return s.conflict("the secret was deleted; it cannot be restored to version %s", st.Prev)
	}
	if l.deleted {
		return s.deletionScheduled()
	}
	cur := l.holder(StageCurrent)
	switch {
	case cur == ours && st.Prev != "":
		_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StageCurrent),
			MoveToVersionId: aws.String(string(st.Prev)), RemoveFromVersionId: aws.String(ours),
		})
		if err != nil {
			var ip *types.InvalidParameterException
			if errors.As(err, &ip) {
				if again, derr := s.describe(ctx, c); derr == nil && again.holder(StageCurrent) != string(st.Prev) {
					return s.conflict("AWSCURRENT moved to version %s while rekey rolled back", orNone(again.holder(StageCurrent)))
				}
			} else {
				return fmt.Errorf("moving AWSCURRENT of secret %q back to version %s: %w", s.opts.SecretID, st.Prev, awsconn.Classify(err))
			}
		}
	case cur == ours:
	case cur != string(st.Prev):
		return s.conflict("AWSCURRENT is on version %s, neither this rotation's %s nor %s that rekey read when the rotation started; nothing was changed", orNone(cur), ours, orNone(string(st.Prev)))
	}
	if l.has(ours, StagePending) {
		_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(s.opts.SecretID), VersionStage: aws.String(StagePending), RemoveFromVersionId: aws.String(ours),
		})
		var ip *types.InvalidParameterException
		if err != nil && !errors.As(err, &ip) {
			return fmt.Errorf("removing AWSPENDING from version %s of secret %q: %w", ours, s.opts.SecretID, awsconn.Classify(err))
		}
	}
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
