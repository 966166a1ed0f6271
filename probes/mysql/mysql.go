// Package mysql implements the mysql probe: it logs in to MariaDB or MySQL
// with the new key (the fields username and password, and by default host,
// port and dbname) over a new connection and runs a query, SELECT 1 unless
// configured.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
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
	host, dbname, tls  string
	dbSet              bool
	port               int
	query              string
	userField, pwField string
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
	p := &Probe{host: cfg.Host, port: cfg.Port, dbname: cfg.DBName, dbSet: cfg.DBName != "", tls: cfg.TLS, query: cfg.Query, userField: cfg.UsernameField, pwField: cfg.PasswordField}
	if p.query == "" {
		p.query = "SELECT 1"
	}
	if p.tls == "" {
		p.tls = "true"
	}
	if p.userField == "" {
		p.userField = myprov.FieldUsername
	}
	if p.pwField == "" {
		p.pwField = myprov.FieldPassword
	}
	if !tlsModes[p.tls] {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid tls", Detail: fmt.Sprintf("tls %q is not one of \"true\" (the default), \"skip-verify\", \"preferred\" or \"false\".", p.tls), Subject: env.Subject(cfg.TLSRange)})
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
		return "", plugin.Permanent(fmt.Errorf("mysql probe: the key has no field %q (fields: %v)", name, key.Value.Names()))
	}
	return v.Reveal(), nil
}

// Check opens a new connection with the key, runs the query and reads its
// rows.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	user, err := field(key, p.userField)
	if err != nil {
		return err
	}
	if _, err := field(key, p.pwField); err != nil {
		return err
	}
	host, port, db := p.host, p.port, p.dbname
	if host == "" {
		if host, err = field(key, myprov.FieldHost); err != nil {
			return err
		}
	}
	if port == 0 {
		ps, err := field(key, myprov.FieldPort)
		if err != nil {
			return err
		}
		if port, err = strconv.Atoi(ps); err != nil {
			return plugin.Permanent(fmt.Errorf("mysql probe: the key's port field is not a number"))
		}
	}
	if !p.dbSet {
		db = key.Value[myprov.FieldDBName].Reveal()
	}
	conn, err := gomysql.NewConnector(myprov.Config(host, port, db, p.tls, user, key.Value[p.pwField]))
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
