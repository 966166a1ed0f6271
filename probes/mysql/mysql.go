// Package mysql implements the mysql probe: it logs in to MariaDB or MySQL
// with the new key (the fields username and password, and by default host,
// port and dbname) over a new connection and runs a query, SELECT 1 unless
// configured.
package mysql

import (
	"context"
	"database/sql"
	"fmt"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/probes/internal/dblogin"
	myprov "github.com/rekeyhq/rekey/providers/mysql"
)

// Kind is the probe's block label.
const Kind = "mysql"

func init() { probes.Register(Kind, New) }

type config struct {
	Host          string    `hcl:"host,optional"`
	Port          int       `hcl:"port,optional"`
	PortRange     hcl.Range `hcl:"port,attr_range"`
	DBName        string    `hcl:"dbname,optional"`
	TLS           string    `hcl:"tls,optional"`
	TLSRange      hcl.Range `hcl:"tls,attr_range"`
	Query         string    `hcl:"query,optional"`
	UsernameField string    `hcl:"username_field,optional"`
	PasswordField string    `hcl:"password_field,optional"`
}

// Probe logs in with a key and runs a query.
type Probe struct {
	login       *dblogin.Login
	dbname, tls string
	dbSet       bool
	query       string
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

var tlsModes = map[string]bool{"false": true, "true": true, "skip-verify": true, "preferred": true}

// New is the factory registered for probe "mysql".
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	login, ldiags := dblogin.New(env, Kind, cfg.Host, cfg.Port, cfg.PortRange, cfg.UsernameField, cfg.PasswordField)
	p := &Probe{login: login, dbname: cfg.DBName, dbSet: cfg.DBName != "", tls: cfg.TLS, query: cfg.Query}
	if p.query == "" {
		p.query = "SELECT 1"
	}
	if p.tls == "" {
		p.tls = "true"
	}
	if !tlsModes[p.tls] {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid tls", Detail: fmt.Sprintf("tls %q is not one of \"true\" (the default), \"skip-verify\", \"preferred\" or \"false\".", p.tls), Subject: env.Subject(cfg.TLSRange)})
	}
	diags = append(diags, ldiags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// DefaultTarget is the key: the probe tests the new credential itself.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetKey }

// Check opens a new connection with the key, runs the query and reads its
// rows.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	c, err := p.login.From(key)
	if err != nil {
		return err
	}
	user, db := c.User, p.dbname
	if !p.dbSet {
		db = key.Value[dblogin.FieldDBName].Reveal()
	}
	conn, err := gomysql.NewConnector(myprov.Config(c.Host, c.Port, db, p.tls, user, c.Password))
	if err != nil {
		return plugin.Permanent(err)
	}
	sdb := sql.OpenDB(conn)
	defer sdb.Close()
	rows, err := sdb.QueryContext(ctx, p.query)
	if err != nil {
		return fmt.Errorf("mysql probe: logging in as %s and running the query: %w", user, err)
	}
	defer rows.Close()
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql probe: running the query as %s: %w", user, err)
	}
	return nil
}
