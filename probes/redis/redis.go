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
	"github.com/rekeyhq/rekey/probes/internal/dblogin"
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
	login   *dblogin.Login
	tls     bool
	caFile  string
	command []string
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
	login, ldiags := dblogin.New(env, Kind, cfg.Host, cfg.Port, cfg.PortRange, cfg.UsernameField, cfg.PasswordField)
	p := &Probe{login: login, tls: cfg.TLS, caFile: env.Path(cfg.CAFile), command: cfg.Command}
	if len(p.command) == 0 {
		p.command = []string{"PING"}
	}
	if strings.TrimSpace(p.command[0]) == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid query", Detail: "query is a Redis command and its arguments, such as [\"GET\", \"app:config\"].", Subject: env.Subject(cfg.CommandRange)})
	}
	diags = append(diags, ldiags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// DefaultTarget is the key: the probe tests the new credential itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

// Check opens a new connection with the key and runs the command. A nil
// reply (a missing key) counts as success: the command was allowed.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	login, err := p.login.From(key)
	if err != nil {
		return err
	}
	user, db := login.User, 0
	if v, ok := key.Value[dblogin.FieldDBName]; ok && !v.IsZero() {
		db, _ = strconv.Atoi(v.Reveal())
	}
	o, err := rprov.Options(login.Host, login.Port, db, p.tls, p.caFile, user, login.Password)
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
