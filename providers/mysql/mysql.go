// Package mysql implements the mysql provider: the keys it manages are the
// passwords of MariaDB (10.4 and later) or MySQL (8) accounts, with the
// same two strategies as the postgres provider.
//
//   - single: one account; each rotation changes its password in place,
//     and the old one stops working at once.
//   - alternating: two accounts, such as app_a and app_b (same host part).
//     Each rotation gives a new password to the account not in use (created
//     on first use with the active account's grants, roles and default
//     role, copied from SHOW GRANTS) and unlocks it; the previous account
//     stays valid until the engine revokes it, which locks it (ACCOUNT
//     LOCK) and gives it a password nobody knows. Accounts are never
//     dropped; the next rotation reuses the locked one.
//
// MariaDB keeps no comment on an account, so a key's id is the account
// name and a fingerprint of its stored password hash (the first 16 hex
// digits of its SHA-256), "app_b@3f2a9c0b1d4e5f60", read from
// mysql.global_priv (MariaDB) or mysql.user (MySQL); its creation time is
// the account's password_last_changed. An id whose account changed
// password since is gone: deleting it changes nothing.
// On MariaDB the password is sent as its mysql_native_password hash,
// computed here, never in plain text.
package mysql

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/dbadmin"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the provider's block label.
const Kind = "mysql"

// Field names of the keys created.
const (
	FieldUsername = "username"
	FieldPassword = "password"
	FieldHost     = "host"
	FieldPort     = "port"
	FieldDBName   = "dbname"
	FieldURI      = "uri"
	FieldEngine   = "engine"
)

// Strategies.
const (
	StrategySingle      = dbadmin.StrategySingle
	StrategyAlternating = dbadmin.StrategyAlternating
)

// maxUserName is the account name limit of MariaDB and MySQL 8.
const maxUserName = 32

type nopLogger struct{}

func (nopLogger) Print(...any) {}

func init() {
	providers.Register(Kind, New)
	// The driver logs connection trouble to stderr by default; rekey
	// reports errors itself.
	_ = mysql.SetLogger(nopLogger{})
}

type config struct {
	Host                string         `hcl:"host"`
	HostRange           hcl.Range      `hcl:"host,attr_range"`
	Port                int            `hcl:"port,optional"`
	PortRange           hcl.Range      `hcl:"port,attr_range"`
	DBName              string         `hcl:"dbname,optional"`
	TLS                 string         `hcl:"tls,optional"`
	TLSRange            hcl.Range      `hcl:"tls,attr_range"`
	Strategy            string         `hcl:"strategy,optional"`
	StrategyRange       hcl.Range      `hcl:"strategy,attr_range"`
	Username            string         `hcl:"username,optional"`
	UsernameRange       hcl.Range      `hcl:"username,attr_range"`
	Usernames           []string       `hcl:"usernames,optional"`
	UsernamesRange      hcl.Range      `hcl:"usernames,attr_range"`
	UserHost            string         `hcl:"user_host,optional"`
	UserHostRange       hcl.Range      `hcl:"user_host,attr_range"`
	PasswordLength      int            `hcl:"password_length,optional"`
	PasswordLengthRange hcl.Range      `hcl:"password_length,attr_range"`
	Admin               *dbadmin.Block `hcl:"admin,block"`
}

type base struct {
	host, dbname, tls, userHost string
	port, pwLen                 int
	admin                       *dbadmin.Credential
}

// Single rotates the password of one account in place.
type Single struct {
	*base
	user string
}

// Alternating rotates between two accounts.
type Alternating struct {
	*base
	users [2]string
}

var (
	_ providers.Provider      = (*Single)(nil)
	_ providers.Lister        = (*Single)(nil)
	_ providers.Provider      = (*Alternating)(nil)
	_ providers.Lister        = (*Alternating)(nil)
	_ providers.Capacity      = (*Alternating)(nil)
	_ providers.Deactivator   = (*Alternating)(nil)
	_ providers.UsageReporter = (*Alternating)(nil)
)

var tlsModes = map[string]bool{"false": true, "true": true, "skip-verify": true, "preferred": true}

// New is the factory registered for provider "mysql".
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	b := &base{host: cfg.Host, port: cfg.Port, dbname: cfg.DBName, tls: cfg.TLS, userHost: cfg.UserHost, pwLen: cfg.PasswordLength}
	if b.port == 0 {
		b.port = 3306
	}
	if b.tls == "" {
		b.tls = "true"
	}
	if b.userHost == "" {
		b.userHost = "%"
	}
	if b.pwLen == 0 {
		b.pwLen = 32
	}
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}
	if strings.TrimSpace(b.host) == "" || strings.ContainsAny(b.host, " /") {
		errAt(cfg.HostRange, "Invalid host", "host is the server's host name or IP address, such as \"db.internal\".")
	}
	if b.port < 1 || b.port > 65535 {
		errAt(cfg.PortRange, "Invalid port", "port must be between 1 and 65535 (the default is 3306).")
	}
	if !tlsModes[b.tls] {
		errAt(cfg.TLSRange, "Invalid tls", fmt.Sprintf("tls %q is not one of \"true\" (verify the server, the default), \"skip-verify\", \"preferred\" or \"false\".", b.tls))
	}
	if err := dbadmin.CheckRoleName(b.userHost, 255); err != nil {
		errAt(cfg.UserHostRange, "Invalid user_host", "user_host is the host part of the accounts, such as \"%\" or \"10.0.%\": "+err.Error())
	}
	d, cdiags := dbadmin.DecodeCommon(env, dbadmin.Common{Accounts: dbadmin.Accounts{Strategy: cfg.Strategy, StrategyRange: cfg.StrategyRange, Username: cfg.Username, UsernameRange: cfg.UsernameRange, Usernames: cfg.Usernames, UsernamesRange: cfg.UsernamesRange},
		PasswordLength: b.pwLen, PasswordLengthRange: cfg.PasswordLengthRange, Admin: cfg.Admin}, "account", maxUserName)
	b.admin = d.Admin
	if diags = append(diags, cdiags...); diags.HasErrors() {
		return nil, diags
	}
	if d.Strategy == StrategySingle {
		return &Single{base: b, user: d.Names[0]}, diags
	}
	return &Alternating{base: b, users: [2]string(d.Names)}, diags
}

// SingleKey reports that the provider holds one key at a time.
func (p *Single) SingleKey() bool { return true }

// Target names the account: mysql:HOST:PORT:USER@USERHOST.
func (p *Single) Target() string {
	return Kind + ":" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) + ":" + p.user + "@" + p.userHost
}

// Target names the accounts: mysql:HOST:PORT:A|B@USERHOST.
func (p *Alternating) Target() string {
	return Kind + ":" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) + ":" + p.users[0] + "|" + p.users[1] + "@" + p.userHost
}

// MaxKeys is 2.
func (p *Alternating) MaxKeys() int { return 2 }

// UsageReportingDelay is zero: sessions are seen live.
func (p *Alternating) UsageReportingDelay() time.Duration { return 0 }

// Config returns a driver configuration for a server and user; the
// password is set on the configuration, never written into a DSN.
func Config(host string, port int, dbname, tlsMode, user string, password secret.Value) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password.Reveal(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)), dbname
	c.TLSConfig = tlsMode
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 30*time.Second, 30*time.Second
	return c
}

func (b *base) open(ctx context.Context) (*sql.Conn, func(), error) {
	pw, err := b.admin.Password(ctx)
	if err != nil {
		return nil, nil, err
	}
	conn, err := mysql.NewConnector(Config(b.host, b.port, "", b.tls, b.admin.Username, pw))
	if err != nil {
		return nil, nil, plugin.Permanent(err)
	}
	db := sql.OpenDB(conn)
	c, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, nil, b.classify(fmt.Errorf("connecting to %s as %s: %w", net.JoinHostPort(b.host, strconv.Itoa(b.port)), b.admin.Username, err))
	}
	return c, func() { _ = c.Close(); _ = db.Close() }, nil
}

func (b *base) classify(err error) error {
	var me *mysql.MySQLError
	if ok := asMySQL(err, &me); !ok {
		return err
	}
	switch me.Number {
	case 1045, 1698:
		return plugin.Permanent(fmt.Errorf("%w (the admin credential was refused: check admin.username %q and %s)", err, b.admin.Username, b.admin.Source()))
	case 1044, 1142, 1227, 1410, 1396, 1064, 1133, 1131, 1132, 1143, 1370, 1449:
		return plugin.Permanent(fmt.Errorf("%w (the admin account lacks a privilege; see the README for what it needs)", err))
	}
	return err
}

func asMySQL(err error, me **mysql.MySQLError) bool {
	for err != nil {
		if m, ok := err.(*mysql.MySQLError); ok {
			*me = m
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func (b *base) value(user string, pw secret.Value) secret.Fields {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(user, pw.Reveal()), Host: net.JoinHostPort(b.host, strconv.Itoa(b.port)), Path: "/" + b.dbname}
	return secret.Fields{
		FieldUsername: secret.New(user),
		FieldPassword: pw,
		FieldHost:     secret.New(b.host),
		FieldPort:     secret.New(strconv.Itoa(b.port)),
		FieldDBName:   secret.New(b.dbname),
		FieldURI:      secret.New(u.String()),
		FieldEngine:   secret.New("mysql"),
	}
}

// quote quotes a string literal for MariaDB and MySQL (no parameters in
// account management statements).
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(s) + "'"
}

// ident quotes an identifier with backquotes.
func ident(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (b *base) account(user string) string { return quote(user) + "@" + quote(b.userHost) }

// nativeHash is MariaDB's mysql_native_password hash of pw.
func nativeHash(pw string) string {
	h1 := sha1.Sum([]byte(pw))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

// flavor tells MariaDB from MySQL.
func flavor(ctx context.Context, c *sql.Conn) (mariadb bool, err error) {
	var v string
	if err := c.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return false, err
	}
	return strings.Contains(strings.ToLower(v), "mariadb"), nil
}

// identified is the clause setting a password: the hash on MariaDB, the
// password on MySQL 8 (its default plugin stores a salted hash; MySQL
// rewrites the statement in its logs).
func identified(mariadb bool, pw secret.Value) string {
	if mariadb {
		return " IDENTIFIED BY PASSWORD " + quote(nativeHash(pw.Reveal()))
	}
	return " IDENTIFIED BY " + quote(pw.Reveal())
}

// account state as the server reports it.
type acct struct {
	name    string
	exists  bool
	locked  bool
	changed int64
	// lifetime is the account's password lifetime in days, the server's
	// default_password_lifetime when the account has none of its own; 0
	// when passwords never expire.
	lifetime int64
	// fp fingerprints the stored password hash: it changes with every
	// new password, and says nothing about the password.
	fp string
}

func (k acct) id() string { return k.name + "@" + k.fp }

// expires is when the account's password expires: its last change plus
// its lifetime; zero when it never does.
func (k acct) expires() time.Time {
	if k.lifetime <= 0 || k.changed <= 0 {
		return time.Time{}
	}
	return time.Unix(k.changed, 0).UTC().Add(time.Duration(k.lifetime) * 24 * time.Hour)
}

func (b *base) read(ctx context.Context, c *sql.Conn, mariadb bool, name string) (acct, error) {
	a := acct{name: name}
	var q string
	var locked sql.NullBool
	if mariadb {
		q = `SELECT JSON_EXTRACT(Priv, '$.account_locked') IN ('true', '1'), COALESCE(JSON_VALUE(Priv, '$.password_last_changed'), 0),
			COALESCE(JSON_VALUE(Priv, '$.authentication_string'), ''), COALESCE(JSON_VALUE(Priv, '$.password_lifetime'), -1),
			@@global.default_password_lifetime FROM mysql.global_priv WHERE User = ? AND Host = ?`
	} else {
		q = `SELECT account_locked = 'Y', COALESCE(UNIX_TIMESTAMP(password_last_changed), 0), COALESCE(authentication_string, ''),
			COALESCE(password_lifetime, -1), @@global.default_password_lifetime FROM mysql.user WHERE User = ? AND Host = ?`
	}
	var auth string
	var lifetime, def int64
	err := c.QueryRowContext(ctx, q, name, b.userHost).Scan(&locked, &a.changed, &auth, &lifetime, &def)
	a.lifetime = lifetime
	if lifetime < 0 {
		a.lifetime = def
	}
	a.locked = locked.Bool
	sum := sha256.Sum256([]byte(auth))
	a.fp = hex.EncodeToString(sum[:8])
	if err == sql.ErrNoRows {
		return a, nil
	}
	if err != nil {
		return a, b.classify(fmt.Errorf("reading account %s: %w", name, err))
	}
	a.exists = true
	return a, nil
}

// ParseKeyID splits a key id into account name and password fingerprint.
func ParseKeyID(id string) (string, string, error) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 || len(id)-i-1 != 16 {
		return "", "", plugin.Permanent(fmt.Errorf("%w: %q is not a mysql key id (USER@FINGERPRINT)", plugin.ErrNotFound, id))
	}
	return id[:i], id[i+1:], nil
}

// maxLifetimeDays is the largest PASSWORD EXPIRE INTERVAL.
const maxLifetimeDays = 65535

// AcceptsKeyTTL implements providers.KeyTTLTaker: a policy's key_ttl
// becomes the account's PASSWORD EXPIRE INTERVAL, in days.
func (b *base) AcceptsKeyTTL() bool { return true }

// CheckKeyTTL implements providers.KeyTTLChecker: MariaDB and MySQL
// expire passwords in whole days.
func (b *base) CheckKeyTTL(d time.Duration) error {
	const day = 24 * time.Hour
	switch {
	case d%day != 0:
		return fmt.Errorf("key_ttl must be a whole number of days, such as \"30d\": MariaDB and MySQL expire a password a number of days after it is set (PASSWORD EXPIRE INTERVAL N DAY)")
	case d/day > maxLifetimeDays:
		return fmt.Errorf("key_ttl must be at most %d days (PASSWORD EXPIRE INTERVAL's limit)", maxLifetimeDays)
	}
	return nil
}

// expireClause is the password option giving a new password the
// policy's key_ttl; "" without one (the account's lifetime is kept).
func expireClause(ttl time.Duration) string {
	if ttl <= 0 {
		return ""
	}
	days := max(int64(ttl/(24*time.Hour)), 1)
	return " PASSWORD EXPIRE INTERVAL " + strconv.FormatInt(days, 10) + " DAY"
}
