// Package postgres implements the postgres probe: it logs in to PostgreSQL
// with the new key (the fields username and password, and by default host,
// port and dbname) over a new connection and runs a query, SELECT 1 unless
// configured.
package postgres

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/probes/internal/dblogin"
	pgprov "github.com/rekeyhq/rekey/providers/postgres"
)

// Kind is the probe's block label.
const Kind = "postgres"

func init() { probes.Register(Kind, New) }

type config struct {
	Host          string    `hcl:"host,optional"`
	Port          int       `hcl:"port,optional"`
	PortRange     hcl.Range `hcl:"port,attr_range"`
	DBName        string    `hcl:"dbname,optional"`
	SSLMode       string    `hcl:"sslmode,optional"`
	SSLModeRange  hcl.Range `hcl:"sslmode,attr_range"`
	SSLRootCert   string    `hcl:"sslrootcert,optional"`
	Query         string    `hcl:"query,optional"`
	UsernameField string    `hcl:"username_field,optional"`
	PasswordField string    `hcl:"password_field,optional"`
}

// Probe logs in with a key and runs a query.
type Probe struct {
	login                     *dblogin.Login
	dbname, sslmode, rootCert string
	query                     string
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

var sslModes = map[string]bool{"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true}

// New is the factory registered for probe "postgres".
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	login, ldiags := dblogin.New(env, Kind, cfg.Host, cfg.Port, cfg.PortRange, cfg.UsernameField, cfg.PasswordField)
	p := &Probe{login: login, dbname: cfg.DBName, sslmode: cfg.SSLMode, rootCert: env.Path(cfg.SSLRootCert), query: cfg.Query}
	if p.query == "" {
		p.query = "SELECT 1"
	}
	if p.sslmode == "" {
		p.sslmode = "verify-full"
	}
	if !sslModes[p.sslmode] {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sslmode", Detail: fmt.Sprintf("sslmode %q is not one of disable, allow, prefer, require, verify-ca, verify-full (the default).", p.sslmode), Subject: env.Subject(cfg.SSLModeRange)})
	}
	diags = append(diags, ldiags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// DefaultTarget is the key: the probe tests the new credential itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

// Check opens a new connection with the key, runs the query and reads
// its rows.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	login, err := p.login.From(key)
	if err != nil {
		return err
	}
	user, db := login.User, p.dbname
	if db == "" {
		if db, err = p.login.Field(key, dblogin.FieldDBName); err != nil {
			return err
		}
	}
	cfg, err := pgprov.ConnConfig(login.Host, login.Port, db, p.sslmode, p.rootCert, user, login.Password)
	if err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres probe: logging in as %s: %w", user, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, p.query)
	if err != nil {
		return fmt.Errorf("postgres probe: running the query as %s: %w", user, err)
	}
	for rows.Next() {
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres probe: running the query as %s: %w", user, err)
	}
	return nil
}
