// Package vaultlogin implements the vault_login probe: it logs in to
// HashiCorp Vault with the NEW key (an AppRole role id and secret id, or a
// token), optionally reads a path with the resulting token, and revokes the
// token it obtained. The connection gives only the address, TLS settings
// and namespace; its own token is never used.
package vaultlogin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
)

// Kind is the probe's block label.
const Kind = "vault_login"

func init() { probes.Register(Kind, New) }

type config struct {
	Connection    hcl.Expression `hcl:"connection"`
	Method        string         `hcl:"method,optional"`
	MethodRange   hcl.Range      `hcl:"method,attr_range"`
	Mount         string         `hcl:"mount,optional"`
	MountRange    hcl.Range      `hcl:"mount,attr_range"`
	RoleIDField   string         `hcl:"role_id_field,optional"`
	SecretIDField string         `hcl:"secret_id_field,optional"`
	TokenField    string         `hcl:"token_field,optional"`
	ReadPath      string         `hcl:"read_path,optional"`
}

// Probe checks that a key logs in to Vault.
type Probe struct {
	conn          *vault.Conn
	method        string
	mount         string
	roleIDField   string
	secretIDField string
	tokenField    string
	readPath      string
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

// New is the factory registered for probe "vault_login".
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Probe{
		method:        cfg.Method,
		mount:         strings.Trim(cfg.Mount, "/"),
		roleIDField:   orDefault(cfg.RoleIDField, "role_id"),
		secretIDField: orDefault(cfg.SecretIDField, "secret_id"),
		tokenField:    orDefault(cfg.TokenField, "token"),
		readPath:      strings.Trim(cfg.ReadPath, "/"),
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
	switch p.method {
	case "", "approle":
		p.method = "approle"
		if p.mount == "" {
			p.mount = "approle"
		}
	case "token":
		if cfg.Mount != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "mount with method token", Detail: "A token needs no login, so mount does not apply to method = \"token\"; remove it.", Subject: cfg.MountRange.Ptr()})
		}
	default:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported method", Detail: fmt.Sprintf("method %q is not supported: use \"approle\" (fields role_id and secret_id) or \"token\" (field token).", p.method), Subject: cfg.MethodRange.Ptr()})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// DefaultTarget is the key: the probe tests the new credential itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

// Check makes one login attempt with the key and, if read_path is set,
// reads it with the token obtained. A token obtained by logging in is
// revoked afterwards.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	c, err := p.conn.NewUnauthenticatedClient()
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx)
	switch p.method {
	case "token":
		tok := key.Value[p.tokenField]
		if tok.IsZero() {
			return plugin.Permanent(fmt.Errorf("vault_login: the key has no field %q (fields: %v)", p.tokenField, key.Value.Names()))
		}
		c.SetToken(tok.Reveal())
		if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			return fmt.Errorf("vault_login: looking up the new token: %w", vault.Sanitize(err))
		}
	default:
		roleID, secretID := key.Value[p.roleIDField], key.Value[p.secretIDField]
		if roleID.IsZero() {
			return plugin.Permanent(fmt.Errorf("vault_login: the key has no field %q (fields: %v)", p.roleIDField, key.Value.Names()))
		}
		body := map[string]any{"role_id": roleID.Reveal()}
		if !secretID.IsZero() {
			body["secret_id"] = secretID.Reveal()
		}
		sec, err := c.Logical().WriteWithContext(ctx, "auth/"+p.mount+"/login", body)
		if err != nil {
			return fmt.Errorf("vault_login: logging in with approle at auth/%s: %w", p.mount, vault.Sanitize(err))
		}
		if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			return fmt.Errorf("vault_login: logging in with approle at auth/%s: no token in the response", p.mount)
		}
		c.SetToken(sec.Auth.ClientToken)
		defer revoke(ctx, c, log)
	}
	if p.readPath != "" {
		sec, err := c.Logical().ReadWithContext(ctx, p.readPath)
		if err != nil {
			return fmt.Errorf("vault_login: reading %s with the new credential: %w", p.readPath, vault.Sanitize(err))
		}
		if sec == nil {
			return fmt.Errorf("vault_login: reading %s with the new credential: nothing there", p.readPath)
		}
	}
	log.Debug().Str("method", p.method).Msg("vault_login: the new credential works")
	return nil
}

func revoke(ctx context.Context, c *api.Client, log *zerolog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Auth().Token().RevokeSelfWithContext(rctx, ""); err != nil {
		log.Warn().Err(vault.Sanitize(err)).Msg("vault_login: could not revoke the probe's token; it expires with its TTL")
	}
}
