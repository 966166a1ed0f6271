// Package redis implements the redis probe: it logs in to Redis with the
// new key (the fields username and password, and by default host, port and
// dbname) over a new connection and runs a command (query), PING unless
// configured.
package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	rprov "github.com/rekeyhq/rekey/providers/redis"
)

// Kind is the probe's block label.
const Kind = "redis"

func init() { probes.Register(Kind, New) }

type config struct {
	Host          string    `hcl:"host,optional"`
	Port          int       `hcl:"port,optional"`
	PortRange     hcl.Range `hcl:"port,attr_range"`
	TLS           bool      `hcl:"tls,optional"`
	CAFile        string    `hcl:"ca_file,optional"`
	Command       []string  `hcl:"query,optional"`
	CommandRange  hcl.Range `hcl:"query,attr_range"`
	UsernameField string    `hcl:"username_field,optional"`
	PasswordField string    `hcl:"password_field,optional"`
}

// Probe logs in with a key and runs a command.
type Probe struct {
	host               string
	port               int
	tls                bool
	caFile             string
	command            []string
	userField, pwField string
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

// New is the factory registered for probe "redis".
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Probe{host: cfg.Host, port: cfg.Port, tls: cfg.TLS, caFile: env.Path(cfg.CAFile), command: cfg.Command, userField: cfg.UsernameField, pwField: cfg.PasswordField}
	if len(p.command) == 0 {
		p.command = []string{"PING"}
	}
	if p.userField == "" {
		p.userField = rprov.FieldUsername
	}
	if p.pwField == "" {
		p.pwField = rprov.FieldPassword
	}
	if strings.TrimSpace(p.command[0]) == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid query", Detail: "query is a Redis command and its arguments, such as [\"GET\", \"app:config\"].", Subject: env.Subject(cfg.CommandRange)})
	}
	if cfg.PortRange != (hcl.Range{}) && (p.port < 1 || p.port > 65535) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port", Detail: "port must be between 1 and 65535.", Subject: env.Subject(cfg.PortRange)})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// DefaultTarget is the key: the probe tests the new credential itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

func field(key plugin.Key, name string) (string, error) {
	v, ok := key.Value[name]
	if !ok || v.IsZero() {
		return "", plugin.Permanent(fmt.Errorf("redis probe: the key has no field %q (fields: %v)", name, key.Value.Names()))
	}
	return v.Reveal(), nil
}

// Check opens a new connection with the key and runs the command. A nil
// reply (a missing key) counts as success: the command was allowed.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	user, err := field(key, p.userField)
	if err != nil {
		return err
	}
	if _, err := field(key, p.pwField); err != nil {
		return err
	}
	host, port, db := p.host, p.port, 0
	if host == "" {
		if host, err = field(key, rprov.FieldHost); err != nil {
			return err
		}
	}
	if port == 0 {
		ps, err := field(key, rprov.FieldPort)
		if err != nil {
			return err
		}
		if port, err = strconv.Atoi(ps); err != nil {
			return plugin.Permanent(fmt.Errorf("redis probe: the key's port field is not a number"))
		}
	}
	if v, ok := key.Value[rprov.FieldDBName]; ok && !v.IsZero() {
		db, _ = strconv.Atoi(v.Reveal())
	}
	o, err := rprov.Options(host, port, db, p.tls, p.caFile, user, key.Value[p.pwField])
	if err != nil {
		return err
	}
	c := goredis.NewClient(o)
	defer c.Close()
	args := make([]any, len(p.command))
	for i, a := range p.command {
		args[i] = a
	}
	if err := c.Do(ctx, args...).Err(); err != nil && err != goredis.Nil {
		return fmt.Errorf("redis probe: %s as %s: %w", p.command[0], user, err)
	}
	return nil
}
