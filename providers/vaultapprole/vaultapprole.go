// Package vaultapprole implements the vault_approle_secret_id provider: the
// keys it manages are the secret ids of one HashiCorp Vault AppRole role.
// A key's id is the secret id's accessor; its value has the fields role_id
// and secret_id, which together log in to Vault.
//
// Each secret id carries the metadata rekey_rotation_id, so that one left
// behind by a crash is found by List. Vault cannot deactivate a secret id,
// so the provider has no Deactivator: an old secret id stays valid until
// it is deleted.
package vaultapprole

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the provider's block label.
const Kind = "vault_approle_secret_id"

// Field names of the keys created.
const (
	FieldRoleID   = "role_id"
	FieldSecretID = "secret_id"
)

// MetaRotationID is the secret id metadata key naming the rotation that
// created it.
const MetaRotationID = "rekey_rotation_id"

// MetaPolicy is the secret id metadata key naming the policy.
const MetaPolicy = "rekey_policy"

func init() { providers.Register(Kind, New) }

type config struct {
	Connection        hcl.Expression    `hcl:"connection"`
	Mount             string            `hcl:"mount,optional"`
	RoleName          string            `hcl:"role_name"`
	RoleNameRange     hcl.Range         `hcl:"role_name,attr_range"`
	Metadata          map[string]string `hcl:"metadata,optional"`
	MetadataRange     hcl.Range         `hcl:"metadata,attr_range"`
	CIDRList          []string          `hcl:"cidr_list,optional"`
	TokenBoundCIDRs   []string          `hcl:"token_bound_cidrs,optional"`
	TTL               string            `hcl:"ttl,optional"`
	TTLRange          hcl.Range         `hcl:"ttl,attr_range"`
	NumUses           int               `hcl:"num_uses,optional"`
	NumUsesRange      hcl.Range         `hcl:"num_uses,attr_range"`
	MaxSecretIDs      int               `hcl:"max_secret_ids,optional"`
	MaxSecretIDsRange hcl.Range         `hcl:"max_secret_ids,attr_range"`
}

// Provider creates and destroys the secret ids of one AppRole role.
type Provider struct {
	conn       *vault.Conn
	mount      string
	role       string
	metadata   map[string]string
	cidrs      []string
	tokenCIDRs []string
	ttl        time.Duration
	numUses    int

	// known holds what this provider learnt of secret ids it created or
	// looked up (by accessor): a secret id's creation time, metadata and
	// expiry never change, so List looks up only accessors it does not
	// know.
	mu    sync.Mutex
	known map[string]plugin.KeyInfo
}

func (p *Provider) remember(info plugin.KeyInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil {
		p.known = map[string]plugin.KeyInfo{}
	}
	p.known[info.ID] = info
}

func (p *Provider) forget(accessor string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.known, accessor)
}

func (p *Provider) recall(accessor string) (plugin.KeyInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	info, ok := p.known[accessor]
	return info, ok
}

// forgetExcept drops what is known of accessors no longer listed.
func (p *Provider) forgetExcept(listed []string) {
	keep := make(map[string]bool, len(listed))
	for _, a := range listed {
		keep[a] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for a := range p.known {
		if !keep[a] {
			delete(p.known, a)
		}
	}
}

// limited is a Provider with a configured limit on secret ids.
type limited struct {
	*Provider
	max int
}

// MaxKeys is the configured max_secret_ids.
func (l limited) MaxKeys() int { return l.max }

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Lister   = (*Provider)(nil)
	_ providers.Capacity = limited{}
)

// New is the factory registered for provider "vault_approle_secret_id".
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Provider{
		mount:      strings.Trim(cfg.Mount, "/"),
		role:       cfg.RoleName,
		metadata:   cfg.Metadata,
		cidrs:      cfg.CIDRList,
		tokenCIDRs: cfg.TokenBoundCIDRs,
		numUses:    cfg.NumUses,
	}
	if p.mount == "" {
		p.mount = "approle"
	}
	c, cdiags := env.Connection(cfg.Connection, vault.Kind)
	diags = append(diags, cdiags...)
	if c != nil {
		conn, ok := c.(*vault.Conn)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid connection", Detail: "connection must name a vault connection.", Subject: cfg.Connection.Range().Ptr()})
		}
		p.conn = conn
	}
	if p.role == "" || strings.Contains(p.role, "/") {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid role_name", Detail: "role_name is the name of an AppRole role, such as \"payments\".", Subject: cfg.RoleNameRange.Ptr()})
	}
	for k := range cfg.Metadata {
		if strings.HasPrefix(k, "rekey_") {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reserved metadata key", Detail: fmt.Sprintf("The key %q uses the prefix rekey_, which rekey reserves; rename it.", k), Subject: cfg.MetadataRange.Ptr()})
		}
	}
	if cfg.TTL != "" {
		d, err := duration.Parse(cfg.TTL)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid ttl", Detail: err.Error(), Subject: cfg.TTLRange.Ptr()})
		case d < time.Second:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid ttl", Detail: "ttl must be at least one second; leave it out to use the role's secret_id_ttl.", Subject: cfg.TTLRange.Ptr()})
		default:
			p.ttl = d
		}
	}
	if cfg.NumUses < 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid num_uses", Detail: "num_uses must be 0 (unlimited) or more.", Subject: cfg.NumUsesRange.Ptr()})
	}
	if cfg.MaxSecretIDs < 0 || cfg.MaxSecretIDsRange != (hcl.Range{}) && cfg.MaxSecretIDs < 2 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid max_secret_ids", Detail: "max_secret_ids must be at least 2: the old and the new secret id exist together during a rotation.", Subject: cfg.MaxSecretIDsRange.Ptr()})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if cfg.MaxSecretIDs > 0 {
		return limited{p, cfg.MaxSecretIDs}, diags
	}
	return p, diags
}

// Target names the role: vault_approle_secret_id:CONNECTION:MOUNT/ROLE.
func (p *Provider) Target() string {
	return Kind + ":" + p.conn.Name() + ":" + p.mount + "/" + p.role
}

func (p *Provider) rolePath() string { return "auth/" + p.mount + "/role/" + p.role }

// Create makes a new secret id carrying the rotation id in its metadata.
// Creating twice for one rotation makes two secret ids; List finds the
// extra one by its rotation id.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	md := map[string]string{}
	for k, v := range p.metadata {
		md[k] = v
	}
	for k, v := range map[string]string{MetaRotationID: rot.ID, MetaPolicy: rot.Policy} {
		if v != "" {
			md[k] = v
		}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("encoding metadata: %w", err))
	}
	body := map[string]any{"metadata": string(mdJSON)}
	if len(p.cidrs) > 0 {
		body["cidr_list"] = p.cidrs
	}
	if len(p.tokenCIDRs) > 0 {
		body["token_bound_cidrs"] = p.tokenCIDRs
	}
	ttl := p.ttl
	if rot.KeyTTL > 0 {
		ttl = rot.KeyTTL
	}
	if ttl > 0 {
		body["ttl"] = int64(ttl / time.Second)
	}
	if p.numUses > 0 {
		body["num_uses"] = p.numUses
	}

	var roleID string
	err = p.conn.Do(ctx, func(c *api.Client) error {
		sec, err := c.Logical().ReadWithContext(ctx, p.rolePath()+"/role-id")
		if err != nil {
			return err
		}
		if sec != nil {
			roleID, _ = sec.Data["role_id"].(string)
		}
		return nil
	})
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: reading the role id: %w", p.Target(), err)
	}
	if roleID == "" {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: role %q does not exist at auth/%s: create it, or fix role_name and mount", p.Target(), p.role, p.mount))
	}

	var sid, accessor string
	var ttlSec int64
	created := time.Now().UTC()
	err = p.conn.Do(ctx, func(c *api.Client) error {
		sec, err := c.Logical().WriteWithContext(ctx, p.rolePath()+"/secret-id", body)
		if err != nil {
			return err
		}
		if sec != nil {
			sid, _ = sec.Data["secret_id"].(string)
			accessor, _ = sec.Data["secret_id_accessor"].(string)
			ttlSec = seconds(sec.Data["secret_id_ttl"])
		}
		return nil
	})
	if err != nil {
		return plugin.Key{}, fmt.Errorf("%s: creating a secret id: %w", p.Target(), err)
	}
	if sid == "" || accessor == "" {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: vault returned no secret id", p.Target()))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", secret.Mask(accessor)).Msg("vault_approle_secret_id: created a secret id")
	key := plugin.Key{
		ID:        accessor,
		Value:     secret.Fields{FieldRoleID: secret.New(roleID), FieldSecretID: secret.New(sid)},
		CreatedAt: created,
	}
	if ttlSec > 0 {
		// Counted from before the request: never later than Vault's own
		// expiration_time.
		key.ExpiresAt = created.Add(time.Duration(ttlSec) * time.Second)
	}
	p.remember(plugin.KeyInfo{ID: accessor, Status: plugin.KeyActive, CreatedAt: created, RotationID: rot.ID, ExpiresAt: key.ExpiresAt})
	return key, nil
}

// AcceptsKeyTTL implements providers.KeyTTLTaker: a policy's key_ttl is
// the ttl of the secret ids it creates (it overrides the block's ttl).
func (p *Provider) AcceptsKeyTTL() bool { return true }

// seconds reads a number of seconds from a Vault response.
func seconds(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return 0
}

// expirationTime reads a lookup's expiration_time; Vault reports the zero
// time (year 1) for a secret id that never expires.
func expirationTime(v any) time.Time {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// lookup returns the secret id's details, or nil when it does not exist.
func (p *Provider) lookup(ctx context.Context, accessor string) (*api.Secret, error) {
	var sec *api.Secret
	err := p.conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().WriteWithContext(ctx, p.rolePath()+"/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": accessor})
		if vault.IsStatus(err, http.StatusNotFound) {
			sec, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: looking up secret id %s: %w", p.Target(), secret.Mask(accessor), err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	return sec, nil
}

// Delete destroys the secret id whose accessor is keyID. A secret id that
// does not exist is not an error (Vault says it failed to find the
// accessor; no lookup first).
func (p *Provider) Delete(ctx context.Context, keyID string) error {
	p.forget(keyID)
	err := p.conn.Do(ctx, func(c *api.Client) error {
		_, err := c.Logical().WriteWithContext(ctx, p.rolePath()+"/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": keyID})
		if re, ok := vault.AsResponseError(err); ok && re.HasMessage("failed to find accessor entry") {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: destroying secret id %s: %w", p.Target(), secret.Mask(keyID), err)
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", secret.Mask(keyID)).Msg("vault_approle_secret_id: destroyed a secret id")
	return nil
}

// List returns the role's secret ids (by accessor), oldest first, with
// their creation time and the rotation that created them, if rekey did.
func (p *Provider) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	var accessors []string
	err := p.conn.Do(ctx, func(c *api.Client) error {
		sec, err := c.Logical().ListWithContext(ctx, p.rolePath()+"/secret-id")
		if err != nil {
			return err
		}
		accessors = accessors[:0]
		if sec != nil {
			keys, _ := sec.Data["keys"].([]any)
			for _, k := range keys {
				if s, ok := k.(string); ok {
					accessors = append(accessors, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listing secret ids: %w", p.Target(), err)
	}
	p.forgetExcept(accessors)
	infos := make([]plugin.KeyInfo, 0, len(accessors))
	for _, a := range accessors {
		if info, ok := p.recall(a); ok {
			infos = append(infos, info)
			continue
		}
		sec, err := p.lookup(ctx, a)
		if err != nil {
			return nil, err
		}
		if sec == nil {
			continue
		}
		info := plugin.KeyInfo{ID: a, Status: plugin.KeyActive}
		if ct, ok := sec.Data["creation_time"].(string); ok {
			info.CreatedAt, _ = time.Parse(time.RFC3339Nano, ct)
		}
		if md, ok := sec.Data["metadata"].(map[string]any); ok {
			info.RotationID, _ = md[MetaRotationID].(string)
		}
		info.ExpiresAt = expirationTime(sec.Data["expiration_time"])
		p.remember(info)
		infos = append(infos, info)
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].CreatedAt.Before(infos[j].CreatedAt) })
	return infos, nil
}
