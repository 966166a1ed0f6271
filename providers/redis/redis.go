// Package redis implements the redis provider: the keys it manages are the
// passwords of one Redis ACL user. An ACL user holds several passwords at
// once, so the old and the new password both work until the old one is
// removed: no second user is needed.
//
// A new password is added as its SHA-256 hash (ACL SETUSER user #HASH), so
// the plain text never reaches the server's command stream in a form that
// could be logged. A key's id is the user name and the first 16 hex digits
// of that hash, "app@3f2a...". rekey records each password it adds (its
// generation, rotation id and creation time, never the password) in the
// hash rekey:acl:USER, so that one added by a rotation that crashed before
// the journal heard of it is found again. Deactivating a key removes the
// password from the user but keeps its hash, so that activating it adds it
// back at once.
package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/dbadmin"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Kind is the provider's block label.
const Kind = "redis"

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

// maxUserName bounds ACL user names (Redis has no limit; this is sanity).
const maxUserName = 128

func init() { providers.Register(Kind, New) }

type config struct {
	Host                string         `hcl:"host"`
	HostRange           hcl.Range      `hcl:"host,attr_range"`
	Port                int            `hcl:"port,optional"`
	PortRange           hcl.Range      `hcl:"port,attr_range"`
	DB                  int            `hcl:"db,optional"`
	DBRange             hcl.Range      `hcl:"db,attr_range"`
	TLS                 bool           `hcl:"tls,optional"`
	CAFile              string         `hcl:"ca_file,optional"`
	Username            string         `hcl:"username"`
	UsernameRange       hcl.Range      `hcl:"username,attr_range"`
	PasswordLength      int            `hcl:"password_length,optional"`
	PasswordLengthRange hcl.Range      `hcl:"password_length,attr_range"`
	Admin               *dbadmin.Block `hcl:"admin,block"`
}

// Provider rotates the passwords of one ACL user.
type Provider struct {
	host   string
	port   int
	db     int
	tls    bool
	caFile string
	user   string
	admin  *dbadmin.Credential
	pwLen  int
}

var (
	_ providers.Provider    = (*Provider)(nil)
	_ providers.Lister      = (*Provider)(nil)
	_ providers.Deactivator = (*Provider)(nil)
)

// New is the factory registered for provider "redis".
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Provider{host: cfg.Host, port: cfg.Port, db: cfg.DB, tls: cfg.TLS, caFile: env.Path(cfg.CAFile), user: cfg.Username, pwLen: cfg.PasswordLength}
	if p.port == 0 {
		p.port = 6379
	}
	if p.pwLen == 0 {
		p.pwLen = 32
	}
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}
	if strings.TrimSpace(p.host) == "" || strings.ContainsAny(p.host, " /") {
		errAt(cfg.HostRange, "Invalid host", "host is the Redis server's host name or IP address, such as \"cache.internal\".")
	}
	if p.port < 1 || p.port > 65535 {
		errAt(cfg.PortRange, "Invalid port", "port must be between 1 and 65535 (Redis's default is 6379).")
	}
	if p.db < 0 {
		errAt(cfg.DBRange, "Invalid db", "db is a database index, 0 or more.")
	}
	diags = append(diags, dbadmin.CheckPasswordLength(env, p.pwLen, cfg.PasswordLengthRange)...)
	if err := checkUser(p.user); err != nil {
		errAt(cfg.UsernameRange, "Invalid username", "username names the ACL user whose passwords are rotated: "+err.Error())
	} else if p.user == "default" {
		errAt(cfg.UsernameRange, "Invalid username", "rotating the default user's password is not supported: give the application its own ACL user.")
	}
	admin, adiags := dbadmin.Decode(env, cfg.Admin, env.DefRange)
	diags = append(diags, adiags...)
	p.admin = admin
	if admin != nil && cfg.Admin != nil {
		if err := checkUser(admin.Username); err != nil {
			errAt(cfg.Admin.UsernameRange, "Invalid admin username", err.Error())
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// checkUser refuses ACL user names that ACL SETUSER would misread: a
// user name is one argument, so only white space and control characters
// (and '@', which separates key ids) are refused.
func checkUser(name string) error {
	if err := dbadmin.CheckRoleName(name, maxUserName); err != nil {
		return err
	}
	if strings.ContainsAny(name, " \t") {
		return fmt.Errorf("%q holds white space", name)
	}
	return nil
}

// Target names the user: redis:HOST:PORT:USER.
func (p *Provider) Target() string {
	return Kind + ":" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) + ":" + p.user
}

func (p *Provider) metaKey() string { return "rekey:acl:" + p.user }

// Options returns go-redis options for a server and user.
func Options(host string, port, db int, useTLS bool, caFile, user string, password secret.Value) (*redis.Options, error) {
	o := &redis.Options{
		Addr: net.JoinHostPort(host, strconv.Itoa(port)), DB: db, Username: user, Password: password.Reveal(),
		MaxRetries: -1, PoolSize: 1, DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		DisableIdentity: true, Protocol: 2,
	}
	if useTLS {
		o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, plugin.Permanent(fmt.Errorf("reading ca_file: %w", err))
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, plugin.Permanent(fmt.Errorf("ca_file %s holds no PEM certificate", caFile))
			}
			o.TLSConfig.RootCAs = pool
		}
	}
	return o, nil
}

func (p *Provider) connect(ctx context.Context) (*redis.Client, error) {
	pw, err := p.admin.Password(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Target(), err)
	}
	o, err := Options(p.host, p.port, 0, p.tls, p.caFile, p.admin.Username, pw)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, p.classify(fmt.Errorf("%s: connecting as %s: %w", p.Target(), p.admin.Username, err))
	}
	return c, nil
}

func (p *Provider) classify(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid username-password"):
		return plugin.Permanent(fmt.Errorf("%w (the admin credential was refused: check admin.username %q and %s)", err, p.admin.Username, p.admin.Source()))
	case strings.Contains(msg, "NOPERM"):
		return plugin.Permanent(fmt.Errorf("%w (the admin user lacks a permission; see the README for its ACL rules)", err))
	}
	return err
}

// entry is one password of the user.
type entry struct {
	hash     string
	active   bool
	gen      int64
	rotation string
	created  time.Time
}

func (e entry) id(user string) string { return user + "@" + e.hash[:16] }

// read returns the user's passwords (active ones from ACL GETUSER,
// deactivated ones from the bookkeeping hash), whether the user exists and
// whether it is on.
func (p *Provider) read(ctx context.Context, c *redis.Client) ([]entry, bool, error) {
	res, err := c.Do(ctx, "ACL", "GETUSER", p.user).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, p.classify(fmt.Errorf("%s: reading ACL user %s: %w", p.Target(), p.user, err))
	}
	meta, err := c.HGetAll(ctx, p.metaKey()).Result()
	if err != nil {
		return nil, false, p.classify(fmt.Errorf("%s: reading %s: %w", p.Target(), p.metaKey(), err))
	}
	hashes := passwords(res)
	var out []entry
	seen := map[string]bool{}
	for _, h := range hashes {
		e := parseEntry(h, meta[h])
		e.active = true
		out = append(out, e)
		seen[h] = true
	}
	for h, v := range meta {
		if !seen[h] && strings.Contains(v, "state=inactive") {
			out = append(out, parseEntry(h, v))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out, true, nil
}

func passwords(res any) []string {
	var kv []any
	switch v := res.(type) {
	case []any:
		kv = v
	case map[any]any:
		for k, x := range v {
			kv = append(kv, k, x)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "passwords" {
			list, _ := kv[i+1].([]any)
			var out []string
			for _, x := range list {
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return nil
}

func parseEntry(hash, v string) entry {
	e := entry{hash: hash}
	for _, f := range strings.Fields(v) {
		k, val, _ := strings.Cut(f, "=")
		switch k {
		case "generation":
			e.gen, _ = strconv.ParseInt(val, 10, 64)
		case "rotation":
			e.rotation = val
		case "created":
			e.created, _ = time.Parse(time.RFC3339, val)
		}
	}
	return e
}

func metaValue(rot plugin.Rotation, created time.Time, state string) string {
	return fmt.Sprintf("generation=%d rotation=%s created=%s state=%s", rot.Generation, strings.ReplaceAll(rot.ID, " ", "_"), created.UTC().Format(time.RFC3339), state)
}

func (p *Provider) value(pw secret.Value) secret.Fields {
	u := url.URL{Scheme: "redis", User: url.UserPassword(p.user, pw.Reveal()), Host: net.JoinHostPort(p.host, strconv.Itoa(p.port)), Path: "/" + strconv.Itoa(p.db)}
	if p.tls {
		u.Scheme = "rediss"
	}
	return secret.Fields{
		FieldUsername: secret.New(p.user),
		FieldPassword: pw,
		FieldHost:     secret.New(p.host),
		FieldPort:     secret.New(strconv.Itoa(p.port)),
		FieldDBName:   secret.New(strconv.Itoa(p.db)),
		FieldURI:      secret.New(u.String()),
		FieldEngine:   secret.New("redis"),
	}
}

// Create adds a new password to the user (which must exist and be on), in
// one MULTI/EXEC with its bookkeeping entry. The user's other passwords
// keep working.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return plugin.Key{}, err
	}
	defer c.Close()
	res, err := c.Do(ctx, "ACL", "GETUSER", p.user).Result()
	if errors.Is(err, redis.Nil) {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: ACL user %s does not exist: create it (ACL SETUSER %s on ...) or fix username", p.Target(), p.user, p.user))
	}
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: reading ACL user %s: %w", p.Target(), p.user, err))
	}
	if !userOn(res) {
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%s: ACL user %s is off: a new password would not work; turn it on or fix username", p.Target(), p.user))
	}
	pw, err := dbadmin.NewPassword(p.pwLen)
	if err != nil {
		return plugin.Key{}, err
	}
	sum := sha256.Sum256([]byte(pw.Reveal()))
	h := hex.EncodeToString(sum[:])
	now := time.Now().UTC().Truncate(time.Second)
	_, err = c.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HSet(ctx, p.metaKey(), h, metaValue(rot, now, "active"))
		tx.Do(ctx, "ACL", "SETUSER", p.user, "#"+h)
		return nil
	})
	if err != nil {
		return plugin.Key{}, p.classify(fmt.Errorf("%s: adding a password to ACL user %s: %w", p.Target(), p.user, err))
	}
	id := entry{hash: h}.id(p.user)
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", id).Msg("redis: added a password to the ACL user")
	return plugin.Key{ID: id, Value: p.value(pw), CreatedAt: now}, nil
}

func userOn(res any) bool {
	var kv []any
	switch v := res.(type) {
	case []any:
		kv = v
	case map[any]any:
		for k, x := range v {
			kv = append(kv, k, x)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "flags" {
			list, _ := kv[i+1].([]any)
			for _, f := range list {
				if f == "on" {
					return true
				}
			}
		}
	}
	return false
}

// find returns the entry whose id is keyID.
func (p *Provider) find(ctx context.Context, c *redis.Client, keyID string) (entry, bool, error) {
	user, prefix, ok := strings.Cut(keyID, "@")
	if !ok || user != p.user || len(prefix) != 16 {
		return entry{}, false, plugin.Permanent(fmt.Errorf("%w: %s: %q is not a key of ACL user %s", plugin.ErrNotFound, p.Target(), keyID, p.user))
	}
	es, _, err := p.read(ctx, c)
	if err != nil {
		return entry{}, false, err
	}
	for _, e := range es {
		if strings.HasPrefix(e.hash, prefix) {
			return e, true, nil
		}
	}
	return entry{}, false, nil
}

// Delete removes the password from the user and forgets its hash.
// Refuses to remove the user's last active password.
func (p *Provider) Delete(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "deleted")
}

// Deactivate removes the password from the user but keeps its hash, so
// that Activate can add it back.
func (p *Provider) Deactivate(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "inactive")
}

// Activate adds a deactivated password back.
func (p *Provider) Activate(ctx context.Context, keyID string) error {
	return p.set(ctx, keyID, "active")
}

func (p *Provider) set(ctx context.Context, keyID, state string) error {
	c, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	e, ok, err := p.find(ctx, c, keyID)
	if err != nil {
		return err
	}
	if !ok {
		if state == "deleted" {
			return nil
		}
		return fmt.Errorf("%w: %s: key %s", plugin.ErrNotFound, p.Target(), keyID)
	}
	if (state == "inactive" && !e.active) || (state == "active" && e.active) {
		return nil // done already (a retry after a crash)
	}
	if state != "active" && e.active {
		es, _, err := p.read(ctx, c)
		if err != nil {
			return err
		}
		n := 0
		for _, x := range es {
			if x.active {
				n++
			}
		}
		if n <= 1 {
			return plugin.Permanent(fmt.Errorf("%s: refusing to remove the last password of ACL user %s", p.Target(), p.user))
		}
	}
	_, err = c.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		switch state {
		case "active":
			tx.Do(ctx, "ACL", "SETUSER", p.user, "#"+e.hash)
			tx.HSet(ctx, p.metaKey(), e.hash, strings.Replace(metaOf(e), "state=inactive", "state=active", 1))
		case "inactive":
			tx.Do(ctx, "ACL", "SETUSER", p.user, "!"+e.hash)
			tx.HSet(ctx, p.metaKey(), e.hash, strings.Replace(metaOf(e), "state=active", "state=inactive", 1))
		default:
			if e.active {
				tx.Do(ctx, "ACL", "SETUSER", p.user, "!"+e.hash)
			}
			tx.HDel(ctx, p.metaKey(), e.hash)
		}
		return nil
	})
	if err != nil {
		return p.classify(fmt.Errorf("%s: setting key %s %s: %w", p.Target(), keyID, state, err))
	}
	zerolog.Ctx(ctx).Info().Str("target", p.Target()).Str("key_id", keyID).Msg("redis: password " + state)
	return nil
}

func metaOf(e entry) string {
	st := "inactive"
	if e.active {
		st = "active"
	}
	return fmt.Sprintf("generation=%d rotation=%s created=%s state=%s", e.gen, e.rotation, e.created.UTC().Format(time.RFC3339), st)
}

// List returns the user's passwords: active ones, and those deactivated by
// rekey.
func (p *Provider) List(ctx context.Context) ([]plugin.KeyInfo, error) {
	c, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	es, _, err := p.read(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]plugin.KeyInfo, 0, len(es))
	for _, e := range es {
		st := plugin.KeyActive
		if !e.active {
			st = plugin.KeyInactive
		}
		out = append(out, plugin.KeyInfo{ID: e.id(p.user), Status: st, CreatedAt: e.created, RotationID: e.rotation})
	}
	return out, nil
}
