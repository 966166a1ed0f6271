// Package exec implements the exec provider: rekey's escape hatch for any
// system with a command-line tool or an API a script can call. Each
// operation (create, delete, and optionally list, deactivate, activate and
// last_used) is a command that rekey runs with a small JSON contract on
// stdout; see the README, "Provider exec".
package exec

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

func init() { providers.Register("exec", New) }

// DefaultTimeout bounds each command when the timeout option is unset.
const DefaultTimeout = time.Minute

type config struct {
	Create          []string          `hcl:"create,optional"`
	Delete          []string          `hcl:"delete,optional"`
	List            []string          `hcl:"list,optional"`
	Deactivate      []string          `hcl:"deactivate,optional"`
	Activate        []string          `hcl:"activate,optional"`
	LastUsed        []string          `hcl:"last_used,optional"`
	MaxKeys         *int              `hcl:"max_keys,optional"`
	UsageDelay      *string           `hcl:"usage_delay,optional"`
	Timeout         *string           `hcl:"timeout,optional"`
	Env             map[string]string `hcl:"env,optional"`
	Target          *string           `hcl:"target,optional"`
	Dir             string            `hcl:"dir,optional"`
	CreateRange     hcl.Range         `hcl:"create,attr_range"`
	DeleteRange     hcl.Range         `hcl:"delete,attr_range"`
	ListRange       hcl.Range         `hcl:"list,attr_range"`
	DeactivateRange hcl.Range         `hcl:"deactivate,attr_range"`
	ActivateRange   hcl.Range         `hcl:"activate,attr_range"`
	LastUsedRange   hcl.Range         `hcl:"last_used,attr_range"`
	MaxKeysRange    hcl.Range         `hcl:"max_keys,attr_range"`
	UsageDelayRange hcl.Range         `hcl:"usage_delay,attr_range"`
	TimeoutRange    hcl.Range         `hcl:"timeout,attr_range"`
	EnvRange        hcl.Range         `hcl:"env,attr_range"`
	TargetRange     hcl.Range         `hcl:"target,attr_range"`
}

// Provider runs the configured commands. It declares
// (providers.Declarer) exactly the optional abilities whose commands are
// configured: list (and capacity with max_keys), deactivate with activate,
// last_used.
type Provider struct {
	providers.Optional
	policy     string
	target     string
	create     *command.Command
	delete     *command.Command
	list       *command.Command
	deactivate *command.Command
	activate   *command.Command
	lastUsed   *command.Command
	maxKeys    int
	usageDelay time.Duration
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Declarer = (*Provider)(nil)
)

// New decodes an exec provider block.
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	p, diags := newProvider(env, body)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

func newProvider(env *plugin.Env, body hcl.Body) (*Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := func(r hcl.Range) hcl.Range {
		if r.Empty() && r.Filename == "" {
			return env.DefRange
		}
		return r
	}
	diags = append(diags, command.CheckArgv("create", cfg.Create, true, at(cfg.CreateRange))...)
	diags = append(diags, command.CheckArgv("delete", cfg.Delete, true, at(cfg.DeleteRange))...)
	diags = append(diags, command.CheckArgv("list", cfg.List, false, at(cfg.ListRange))...)
	diags = append(diags, command.CheckArgv("deactivate", cfg.Deactivate, false, at(cfg.DeactivateRange))...)
	diags = append(diags, command.CheckArgv("activate", cfg.Activate, false, at(cfg.ActivateRange))...)
	diags = append(diags, command.CheckArgv("last_used", cfg.LastUsed, false, at(cfg.LastUsedRange))...)
	diags = append(diags, command.CheckEnv(cfg.Env, at(cfg.EnvRange))...)

	if (cfg.Deactivate == nil) != (cfg.Activate == nil) {
		r := cfg.DeactivateRange
		if cfg.Deactivate == nil {
			r = cfg.ActivateRange
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Deactivate and activate go together",
			Detail:   "Set both deactivate and activate, or neither: rekey re-activates a deactivated old key at once when a dependent still needs it, so it cannot deactivate a key it could not activate again.",
			Subject:  at(r).Ptr(),
		})
	}
	maxKeys := 0
	if cfg.MaxKeys != nil {
		maxKeys = *cfg.MaxKeys
		switch {
		case maxKeys < 2:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid max_keys",
				Detail:   "max_keys must be at least 2: a rotation holds the old and the new key at once.",
				Subject:  at(cfg.MaxKeysRange).Ptr(),
			})
		case cfg.List == nil:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "max_keys needs a list command",
				Detail:   "rekey checks the key limit by counting the keys that the list command reports. Add list, or remove max_keys.",
				Subject:  at(cfg.MaxKeysRange).Ptr(),
			})
		}
	}
	var usageDelay time.Duration
	if cfg.UsageDelay != nil {
		d, err := duration.Parse(*cfg.UsageDelay)
		switch {
		case err != nil:
			diags = append(diags, durationDiag("usage_delay", err, at(cfg.UsageDelayRange)))
		case d < 0:
			diags = append(diags, durationDiag("usage_delay", fmt.Errorf("usage_delay must not be negative"), at(cfg.UsageDelayRange)))
		case cfg.LastUsed == nil:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "usage_delay needs a last_used command",
				Detail:   "usage_delay says how late the last_used command may report a use. Add last_used, or remove usage_delay.",
				Subject:  at(cfg.UsageDelayRange).Ptr(),
			})
		}
		usageDelay = d
	}
	timeout := DefaultTimeout
	if cfg.Timeout != nil {
		d, err := duration.Parse(*cfg.Timeout)
		switch {
		case err != nil:
			diags = append(diags, durationDiag("timeout", err, at(cfg.TimeoutRange)))
		case d <= 0:
			diags = append(diags, durationDiag("timeout", fmt.Errorf("timeout must be positive"), at(cfg.TimeoutRange)))
		}
		timeout = d
	}
	target := "exec:" + env.Policy
	if cfg.Target != nil {
		target = *cfg.Target
		if target == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Empty target",
				Detail:   "target names the credential this provider manages, such as \"legacy-api:svc-payments\"; leave it out to use \"exec:\" and the policy name.",
				Subject:  at(cfg.TargetRange).Ptr(),
			})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	dir := ""
	if cfg.Dir != "" {
		dir = env.Path(cfg.Dir)
	}
	mk := func(argv []string) *command.Command {
		if argv == nil {
			return nil
		}
		return &command.Command{
			Argv:        command.Resolve(argv, env.Path),
			Env:         cfg.Env,
			Dir:         dir,
			Timeout:     timeout,
			StderrLimit: 4 << 10,
		}
	}
	create := mk(cfg.Create)
	create.SecretStdout = true // it prints the new key
	p := &Provider{
		policy:     env.Policy,
		target:     target,
		create:     create,
		delete:     mk(cfg.Delete),
		list:       mk(cfg.List),
		deactivate: mk(cfg.Deactivate),
		activate:   mk(cfg.Activate),
		lastUsed:   mk(cfg.LastUsed),
		maxKeys:    maxKeys,
		usageDelay: usageDelay,
	}
	p.Optional = providers.Optional{Kind: "exec", Limit: maxKeys, UsageDelay: usageDelay}
	if p.list != nil {
		p.ListFunc = p.listKeys
	}
	if p.deactivate != nil && p.activate != nil {
		p.DeactivateFunc, p.ActivateFunc = p.runDeactivate, p.runActivate
	}
	if p.lastUsed != nil {
		p.LastUsedFunc = p.runLastUsed
	}
	return p, diags
}

func durationDiag(attr string, err error, r hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid " + attr,
		Detail:   err.Error() + ".",
		Subject:  r.Ptr(),
	}
}

// Target implements providers.Provider.
func (p *Provider) Target() string { return p.target }

// AcceptsKeyTTL implements providers.KeyTTLTaker: the create command
// receives a policy's key_ttl as REKEY_KEY_TTL (seconds).
func (p *Provider) AcceptsKeyTTL() bool { return true }

// Create runs the create command and parses the key it prints.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	policy := rot.Policy
	if policy == "" {
		policy = p.policy
	}
	env := []string{
		"REKEY_POLICY=" + policy,
		"REKEY_ROTATION_ID=" + rot.ID,
		"REKEY_GENERATION=" + strconv.FormatInt(rot.Generation, 10),
	}
	if rot.KeyTTL > 0 {
		env = append(env, "REKEY_KEY_TTL="+strconv.FormatInt(int64(rot.KeyTTL/time.Second), 10))
	}
	out, err := p.create.Run(ctx, env)
	if err != nil {
		return plugin.Key{}, fmt.Errorf("running the create command: %w", err)
	}
	var res struct {
		ID        *string            `json:"id"`
		Value     map[string]*string `json:"value"`
		CreatedAt *string            `json:"created_at"`
		ExpiresAt *string            `json:"expires_at"`
	}
	if err := decodeStrict(out, &res, "id, value, created_at, expires_at"); err != nil {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: %w", err))
	}
	if res.ID == nil {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: the \"id\" field is missing"))
	}
	if err := checkID(*res.ID); err != nil {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: %w", err))
	}
	if len(res.Value) == 0 {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: the \"value\" object is missing or empty; it must hold the key's secret fields"))
	}
	fields := make(secret.Fields, len(res.Value))
	for name, v := range res.Value {
		if name == "" {
			return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: \"value\" has a field with an empty name"))
		}
		if v == nil || *v == "" {
			return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: field %q of \"value\" is empty or null", name))
		}
		fields[name] = secret.New(*v)
	}
	created := time.Now().UTC()
	if res.CreatedAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *res.CreatedAt)
		if err != nil {
			return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: created_at is not an RFC 3339 time such as 2025-01-31T12:00:00Z"))
		}
		created = t
	}
	var expires time.Time
	if res.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *res.ExpiresAt)
		if err != nil {
			return plugin.Key{}, plugin.Permanent(fmt.Errorf("reading the output of the create command: expires_at is not an RFC 3339 time such as 2025-01-31T12:00:00Z"))
		}
		expires = t
	}
	return plugin.Key{ID: *res.ID, Value: fields, CreatedAt: created, ExpiresAt: expires}, nil
}

// Delete runs the delete command for keyID. The command must exit 0 when
// the key is already gone.
func (p *Provider) Delete(ctx context.Context, keyID string) error {
	if _, err := p.delete.Run(ctx, p.keyEnv(keyID)); err != nil {
		return fmt.Errorf("running the delete command for key %s: %w", secret.Mask(keyID), err)
	}
	return nil
}

func (p *Provider) keyEnv(keyID string) []string {
	return []string{"REKEY_POLICY=" + p.policy, "REKEY_KEY_ID=" + keyID}
}

func (p *Provider) listKeys(ctx context.Context) ([]plugin.KeyInfo, error) {
	out, err := p.list.Run(ctx, []string{"REKEY_POLICY=" + p.policy})
	if err != nil {
		return nil, fmt.Errorf("running the list command: %w", err)
	}
	var res struct {
		Keys *[]struct {
			ID         *string `json:"id"`
			Status     string  `json:"status"`
			CreatedAt  *string `json:"created_at"`
			ExpiresAt  *string `json:"expires_at"`
			RotationID string  `json:"rotation_id"`
		} `json:"keys"`
	}
	if err := decodeStrict(out, &res, "keys (with id, status, created_at, expires_at, rotation_id)"); err != nil {
		return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: %w", err))
	}
	if res.Keys == nil {
		return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: the \"keys\" list is missing; print {\"keys\": []} when there are none"))
	}
	infos := make([]plugin.KeyInfo, 0, len(*res.Keys))
	for i, k := range *res.Keys {
		if k.ID == nil {
			return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: key %d has no \"id\"", i))
		}
		if err := checkID(*k.ID); err != nil {
			return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: key %d: %w", i, err))
		}
		info := plugin.KeyInfo{ID: *k.ID, Status: plugin.KeyStatus(k.Status), RotationID: k.RotationID}
		if info.Status != plugin.KeyActive && info.Status != plugin.KeyInactive {
			return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: key %s has status %q; use \"active\" or \"inactive\"", secret.Mask(*k.ID), k.Status))
		}
		if k.CreatedAt != nil {
			t, err := time.Parse(time.RFC3339Nano, *k.CreatedAt)
			if err != nil {
				return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: created_at of key %s is not an RFC 3339 time such as 2025-01-31T12:00:00Z", secret.Mask(*k.ID)))
			}
			info.CreatedAt = t
		}
		if k.ExpiresAt != nil {
			t, err := time.Parse(time.RFC3339Nano, *k.ExpiresAt)
			if err != nil {
				return nil, plugin.Permanent(fmt.Errorf("reading the output of the list command: expires_at of key %s is not an RFC 3339 time such as 2025-01-31T12:00:00Z", secret.Mask(*k.ID)))
			}
			info.ExpiresAt = t
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func (p *Provider) runDeactivate(ctx context.Context, keyID string) error {
	if _, err := p.deactivate.Run(ctx, p.keyEnv(keyID)); err != nil {
		return fmt.Errorf("running the deactivate command for key %s: %w", secret.Mask(keyID), err)
	}
	return nil
}

func (p *Provider) runActivate(ctx context.Context, keyID string) error {
	if _, err := p.activate.Run(ctx, p.keyEnv(keyID)); err != nil {
		return fmt.Errorf("running the activate command for key %s: %w", secret.Mask(keyID), err)
	}
	return nil
}

func (p *Provider) runLastUsed(ctx context.Context, keyID string) (time.Time, error) {
	out, err := p.lastUsed.Run(ctx, p.keyEnv(keyID))
	if err != nil {
		return time.Time{}, fmt.Errorf("running the last_used command for key %s: %w", secret.Mask(keyID), err)
	}
	var res struct {
		LastUsed rawField `json:"last_used"`
	}
	if err := decodeStrict(out, &res, "last_used"); err != nil {
		return time.Time{}, plugin.Permanent(fmt.Errorf("reading the output of the last_used command: %w", err))
	}
	if !res.LastUsed.present {
		return time.Time{}, plugin.Permanent(fmt.Errorf("reading the output of the last_used command: the \"last_used\" field is missing; print {\"last_used\": null} for a key never used"))
	}
	if res.LastUsed.null {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, res.LastUsed.s)
	if err != nil {
		return time.Time{}, plugin.Permanent(fmt.Errorf("reading the output of the last_used command: last_used is not an RFC 3339 time such as 2025-01-31T12:00:00Z, nor null"))
	}
	return t, nil
}
