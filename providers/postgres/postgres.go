// Package postgres implements the postgres provider: the keys it manages
// are the passwords of PostgreSQL login roles, with one of two strategies.
//
//   - single: one role; each rotation changes its password in place. A role
//     has one password, so an application holding the old one fails at its
//     next new connection until it re-reads the sink.
//   - alternating: two roles, such as app_a and app_b. Each rotation gives a
//     new password to the role not in use (created on first use as a clone
//     of the active role: same attributes, same role memberships, and a
//     member of the active role so that it holds its privileges), and the
//     previous role stays valid until the engine revokes it, which locks it
//     (NOLOGIN, password removed). Roles are never dropped; the next
//     rotation reuses the locked one.
//
// A key's id names the role and the rotation generation, "app_b@7". rekey
// keeps its bookkeeping (policy, generation, rotation id, creation time,
// state) in the role's comment, so that a role changed by a rotation that
// crashed before the journal heard of it is found again. Passwords are sent
// as SCRAM-SHA-256 verifiers computed here, never as plain text.
package postgres

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/dbadmin"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the provider's block label.
const Kind = "postgres"

// Field names of the keys created.
const (
	FieldUsername = "username"
	FieldPassword = "password"
	FieldHost     = "host"
	FieldPort     = "port"
	FieldDBName   = "dbname"
	FieldURI      = "uri"
	// FieldEngine is "postgres", for sinks that write the JSON shape of
	// AWS's own database rotation (engine, host, port, username, password,
	// dbname).
	FieldEngine = "engine"
)

// Strategies.
const (
	StrategySingle      = dbadmin.StrategySingle
	StrategyAlternating = dbadmin.StrategyAlternating
)

// maxRoleName is PostgreSQL's NAMEDATALEN - 1.
const maxRoleName = 63

func init() { providers.Register(Kind, New) }

type config struct {
	Host                   string         `hcl:"host"`
	HostRange              hcl.Range      `hcl:"host,attr_range"`
	Port                   int            `hcl:"port,optional"`
	PortRange              hcl.Range      `hcl:"port,attr_range"`
	DBName                 string         `hcl:"dbname,optional"`
	SSLMode                string         `hcl:"sslmode,optional"`
	SSLModeRange           hcl.Range      `hcl:"sslmode,attr_range"`
	SSLRootCert            string         `hcl:"sslrootcert,optional"`
	Strategy               string         `hcl:"strategy,optional"`
	StrategyRange          hcl.Range      `hcl:"strategy,attr_range"`
	Username               string         `hcl:"username,optional"`
	UsernameRange          hcl.Range      `hcl:"username,attr_range"`
	Usernames              []string       `hcl:"usernames,optional"`
	UsernamesRange         hcl.Range      `hcl:"usernames,attr_range"`
	PasswordLength         int            `hcl:"password_length,optional"`
	PasswordLengthRange    hcl.Range      `hcl:"password_length,attr_range"`
	TerminateSessionsAfter string         `hcl:"terminate_sessions_after,optional"`
	TerminateRange         hcl.Range      `hcl:"terminate_sessions_after,attr_range"`
	Admin                  *dbadmin.Block `hcl:"admin,block"`
}

var sslModes = map[string]bool{"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true}

// base is what both strategies share: where the server is and how rekey
// logs in to it.
type base struct {
	host, dbname, sslmode, rootCert string
	port                            int
	admin                           *dbadmin.Credential
	pwLen                           int
	terminateAfter                  time.Duration
	policy                          string
}

// Single rotates the password of one role in place.
type Single struct {
	*base
	role string
}

// Alternating rotates between two roles.
type Alternating struct {
	*base
	roles [2]string
}

var (
	_ providers.Provider      = (*Single)(nil)
	_ providers.Lister        = (*Single)(nil)
	_ providers.UsageReporter = (*Single)(nil)
	_ providers.Provider      = (*Alternating)(nil)
	_ providers.Lister        = (*Alternating)(nil)
	_ providers.Capacity      = (*Alternating)(nil)
	_ providers.Deactivator   = (*Alternating)(nil)
	_ providers.UsageReporter = (*Alternating)(nil)
)

// New is the factory registered for provider "postgres".
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	b := &base{host: cfg.Host, port: cfg.Port, dbname: cfg.DBName, sslmode: cfg.SSLMode, rootCert: env.Path(cfg.SSLRootCert), pwLen: cfg.PasswordLength, policy: env.Policy}
	if b.port == 0 {
		b.port = 5432
	}
	if b.dbname == "" {
		b.dbname = "postgres"
	}
	if b.sslmode == "" {
		b.sslmode = "verify-full"
	}
	if b.pwLen == 0 {
		b.pwLen = 32
	}
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}
	if strings.TrimSpace(b.host) == "" || strings.ContainsAny(b.host, " /") && !strings.HasPrefix(b.host, "/") {
		errAt(cfg.HostRange, "Invalid host", "host is the PostgreSQL server's host name or IP address, such as \"db.internal\".")
	}
	if b.port < 1 || b.port > 65535 {
		errAt(cfg.PortRange, "Invalid port", "port must be between 1 and 65535 (PostgreSQL's default is 5432).")
	}
	if !sslModes[b.sslmode] {
		errAt(cfg.SSLModeRange, "Invalid sslmode", fmt.Sprintf("sslmode %q is not one of disable, allow, prefer, require, verify-ca, verify-full (the default).", b.sslmode))
	}
	if cfg.TerminateSessionsAfter != "" {
		d, err := duration.Parse(cfg.TerminateSessionsAfter)
		if err != nil || d <= 0 {
			errAt(cfg.TerminateRange, "Invalid terminate_sessions_after", "terminate_sessions_after is a duration such as \"15m\": how long after a rotation the old credential's sessions are ended.")
		}
		b.terminateAfter = d
	}
	d, cdiags := dbadmin.DecodeCommon(env, dbadmin.Common{Accounts: dbadmin.Accounts{Strategy: cfg.Strategy, StrategyRange: cfg.StrategyRange, Username: cfg.Username, UsernameRange: cfg.UsernameRange, Usernames: cfg.Usernames, UsernamesRange: cfg.UsernamesRange},
		PasswordLength: b.pwLen, PasswordLengthRange: cfg.PasswordLengthRange, Admin: cfg.Admin}, "role", maxRoleName)
	b.admin = d.Admin
	if diags = append(diags, cdiags...); diags.HasErrors() {
		return nil, diags
	}
	if d.Strategy == StrategySingle {
		return &Single{base: b, role: d.Names[0]}, diags
	}
	return &Alternating{base: b, roles: [2]string(d.Names)}, diags
}

// SingleKey reports that the provider holds one key at a time: creating a
// key invalidates the previous one at once.
func (p *Single) SingleKey() bool { return true }

// Target names the role: postgres:HOST:PORT:ROLE.
func (p *Single) Target() string {
	return Kind + ":" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) + ":" + p.role
}

// Target names the two roles: postgres:HOST:PORT:ROLE_A|ROLE_B.
func (p *Alternating) Target() string {
	return Kind + ":" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) + ":" + p.roles[0] + "|" + p.roles[1]
}

// MaxKeys is 2: at most both roles hold a password.
func (p *Alternating) MaxKeys() int { return 2 }

// UsageReportingDelay is zero: sessions are seen live.
func (b *base) UsageReportingDelay() time.Duration { return 0 }

// ConnConfig returns a pgx configuration for a server and user. The
// password is set on the configuration, never written into a string.
func ConnConfig(host string, port int, dbname, sslmode, rootCert, user string, password secret.Value) (*pgx.ConnConfig, error) {
	var sb strings.Builder
	kv := func(k, v string) {
		v = strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`)
		fmt.Fprintf(&sb, "%s='%s' ", k, v)
	}
	kv("host", host)
	kv("port", strconv.Itoa(port))
	kv("dbname", dbname)
	kv("sslmode", sslmode)
	if rootCert != "" {
		kv("sslrootcert", rootCert)
	}
	kv("connect_timeout", "10")
	kv("application_name", "rekey")
	cfg, err := pgx.ParseConfig(sb.String())
	if err != nil {
		return nil, plugin.Permanent(fmt.Errorf("connection settings: %w", err))
	}
	cfg.User = user
	cfg.Password = password.Reveal()
	return cfg, nil
}

func (b *base) connect(ctx context.Context) (*pgx.Conn, error) {
	pw, err := b.admin.Password(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := ConnConfig(b.host, b.port, b.dbname, b.sslmode, b.rootCert, b.admin.Username, pw)
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, b.classify(fmt.Errorf("connecting to %s as %s: %w", net.JoinHostPort(b.host, strconv.Itoa(b.port)), b.admin.Username, err))
	}
	return c, nil
}

// value is the key value served to dependents.
func (b *base) value(user string, pw secret.Value) secret.Fields {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, pw.Reveal()), Host: net.JoinHostPort(b.host, strconv.Itoa(b.port)), Path: "/" + b.dbname}
	if b.sslmode != "prefer" {
		u.RawQuery = "sslmode=" + b.sslmode
	}
	return secret.Fields{
		FieldUsername: secret.New(user),
		FieldPassword: pw,
		FieldHost:     secret.New(b.host),
		FieldPort:     secret.New(strconv.Itoa(b.port)),
		FieldDBName:   secret.New(b.dbname),
		FieldURI:      secret.New(u.String()),
		FieldEngine:   secret.New("postgres"),
	}
}

// KeyID returns the id of generation gen of role.
func KeyID(role string, gen int64) string { return role + "@" + strconv.FormatInt(gen, 10) }

// ParseKeyID splits a key id into role and generation.
func ParseKeyID(id string) (string, int64, error) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 {
		return "", 0, plugin.Permanent(fmt.Errorf("%w: %q is not a postgres key id (ROLE@GENERATION)", plugin.ErrNotFound, id))
	}
	g, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || g < 0 {
		return "", 0, plugin.Permanent(fmt.Errorf("%w: %q is not a postgres key id (ROLE@GENERATION)", plugin.ErrNotFound, id))
	}
	return id[:i], g, nil
}
