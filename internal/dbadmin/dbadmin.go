// Package dbadmin holds what the database providers share: the admin
// credential block (a password read from a file, an environment variable
// or Vault, never a literal), random passwords, and role name checks.
package dbadmin

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// Block is the HCL shape of an `admin { ... }` block.
type Block struct {
	Username        string         `hcl:"username"`
	UsernameRange   hcl.Range      `hcl:"username,attr_range"`
	PasswordFile    string         `hcl:"password_file,optional"`
	PasswordEnv     string         `hcl:"password_env,optional"`
	VaultConnection hcl.Expression `hcl:"vault_connection,optional"`
	VaultPath       string         `hcl:"vault_path,optional"`
	VaultPathRange  hcl.Range      `hcl:"vault_path,attr_range"`
	VaultField      string         `hcl:"vault_field,optional"`
	DefRange        hcl.Range      `hcl:",def_range"`
}

// Credential is a decoded admin block: a user name and where its password
// is read, at each use (so that a rotated admin password is picked up).
type Credential struct {
	Username string
	file     string
	env      string
	conn     *vault.Conn
	path     string
	field    string
}

// Decode validates an admin block. Exactly one of password_file,
// password_env and vault_path must be given.
func Decode(env *plugin.Env, b *Block, blockRange hcl.Range) (*Credential, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if b == nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Missing admin block",
			Detail: "The provider needs an admin block naming the role that changes passwords and where its password is read: admin { username = \"rekey_admin\"  password_file = \"/run/secrets/db-admin\" }.", Subject: blockRange.Ptr()}}
	}
	c := &Credential{Username: b.Username, file: env.Path(b.PasswordFile), env: b.PasswordEnv, path: strings.Trim(b.VaultPath, "/"), field: b.VaultField}
	if c.field == "" {
		c.field = "password"
	}
	if strings.TrimSpace(b.Username) == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid admin username", Detail: "admin.username names the role rekey logs in as to change passwords.", Subject: env.Subject(b.UsernameRange)})
	}
	hasVault := b.VaultConnection != nil && b.VaultConnection.Range().Start != b.VaultConnection.Range().End
	n := 0
	for _, set := range []bool{b.PasswordFile != "", b.PasswordEnv != "", hasVault || c.path != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid admin password source",
			Detail: "Give exactly one of password_file (a file holding the password), password_env (an environment variable) or vault_connection with vault_path (a Vault KV secret); a literal password is never accepted.", Subject: b.DefRange.Ptr()})
	}
	if hasVault || c.path != "" {
		if !hasVault || c.path == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete Vault admin password",
				Detail: "Reading the admin password from Vault needs both vault_connection (such as vault.main) and vault_path (such as \"secret/data/db-admin\").", Subject: b.DefRange.Ptr()})
		} else {
			v, vd := env.Connection(b.VaultConnection, vault.Kind)
			diags = append(diags, vd...)
			if conn, ok := v.(*vault.Conn); ok {
				c.conn = conn
			}
		}
	}
	return c, diags
}

// Password reads the admin password from its source.
func (c *Credential) Password(ctx context.Context) (secret.Value, error) {
	switch {
	case c.file != "":
		b, err := os.ReadFile(c.file)
		if err != nil {
			return secret.Value{}, plugin.Permanent(fmt.Errorf("reading the admin password file: %w", err))
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return secret.Value{}, plugin.Permanent(fmt.Errorf("the admin password file %s is empty", c.file))
		}
		return secret.New(pw), nil
	case c.env != "":
		pw := os.Getenv(c.env)
		if pw == "" {
			return secret.Value{}, plugin.Permanent(fmt.Errorf("the environment variable %s holding the admin password is not set", c.env))
		}
		return secret.New(pw), nil
	case c.conn != nil:
		var pw string
		err := c.conn.Do(ctx, func(cl *api.Client) error {
			sec, err := cl.Logical().ReadWithContext(ctx, c.path)
			if err != nil {
				return err
			}
			if sec == nil || sec.Data == nil {
				return plugin.Permanent(fmt.Errorf("nothing at %s", c.path))
			}
			data := sec.Data
			if inner, ok := data["data"].(map[string]any); ok {
				data = inner
			}
			pw, _ = data[c.field].(string)
			return nil
		})
		if err != nil {
			return secret.Value{}, fmt.Errorf("reading the admin password from vault %s at %s: %w", c.conn.Name(), c.path, err)
		}
		if pw == "" {
			return secret.Value{}, plugin.Permanent(fmt.Errorf("the vault secret %s has no field %q", c.path, c.field))
		}
		return secret.New(pw), nil
	}
	return secret.Value{}, plugin.Permanent(fmt.Errorf("no admin password source"))
}

// Source describes where the password is read, for error messages.
func (c *Credential) Source() string {
	switch {
	case c.file != "":
		return "admin.password_file " + c.file
	case c.env != "":
		return "admin.password_env " + c.env
	case c.conn != nil:
		return "vault " + c.conn.Name() + " " + c.path
	}
	return "none"
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewPassword returns n random letters and digits (about 5.95 bits each):
// safe in URIs, connection strings and shell variables without quoting.
func NewPassword(n int) (secret.Value, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return secret.Value{}, err
		}
		for _, b := range buf {
			if int(b) < 256-256%len(alphabet) && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return secret.New(string(out)), nil
}

// CheckRoleName refuses a role or user name that could only be an
// injection attempt or a mistake: empty, longer than max bytes, holding a
// quote, a semicolon, a backslash, a comment marker, '@' (it separates the
// role from the generation in key ids) or a control character. Other names
// (upper case, spaces, dashes) are fine: they are always quoted.
func CheckRoleName(name string, max int) error {
	switch {
	case name == "":
		return fmt.Errorf("the name is empty")
	case len(name) > max:
		return fmt.Errorf("%q is longer than %d bytes", name, max)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case strings.ContainsAny(name, "\"'`;\\@"), strings.Contains(name, "--"), strings.Contains(name, "/*"):
		return fmt.Errorf("%q holds a quote, semicolon, backslash, '@' or comment marker: a role name with these is refused as a likely injection attempt", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%q holds a control character", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%q starts or ends with white space", name)
	}
	return nil
}

// The strategies of the database providers.
const (
	// StrategySingle rotates one account's password in place.
	StrategySingle = "single"
	// StrategyAlternating rotates between two accounts.
	StrategyAlternating = "alternating"
)

// Accounts are the attributes of a database provider block that choose
// the strategy and name the accounts.
type Accounts struct {
	Strategy       string
	StrategyRange  hcl.Range
	Username       string
	UsernameRange  hcl.Range
	Usernames      []string
	UsernamesRange hcl.Range
}

// DecodeAccounts validates the strategy (single unless usernames are
// given) and the account names, each at most maxName bytes. noun is what
// the database calls an account ("role", "account"), for the messages. It
// returns the strategy and the names: one for single, two for alternating.
func DecodeAccounts(env *plugin.Env, a Accounts, noun string, maxName int) (string, []string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}
	strategy := a.Strategy
	if strategy == "" {
		strategy = StrategySingle
		if len(a.Usernames) > 0 {
			strategy = StrategyAlternating
		}
	}
	var names []string
	switch strategy {
	case StrategySingle:
		if len(a.Usernames) > 0 {
			errAt(a.UsernamesRange, "usernames with strategy single", fmt.Sprintf("The single strategy rotates one %s: set username, or set strategy = \"alternating\" to use two %ss.", noun, noun))
		}
		if err := CheckRoleName(a.Username, maxName); err != nil {
			errAt(a.UsernameRange, "Invalid username", fmt.Sprintf("username names the %s whose password is rotated: %v", noun, err))
		}
		names = []string{a.Username}
	case StrategyAlternating:
		if a.Username != "" {
			errAt(a.UsernameRange, "username with strategy alternating", fmt.Sprintf("The alternating strategy uses two %ss: set usernames = [\"app_a\", \"app_b\"] instead of username.", noun))
		}
		if len(a.Usernames) != 2 || a.Usernames[0] == a.Usernames[1] {
			errAt(a.UsernamesRange, "Invalid usernames", fmt.Sprintf("The alternating strategy needs exactly two different %ss, such as usernames = [\"app_a\", \"app_b\"]: the first is the %s in use today; the second is created as its clone if it does not exist.", noun, noun))
			names = []string{"", ""}
		} else {
			for _, n := range a.Usernames {
				if err := CheckRoleName(n, maxName); err != nil {
					errAt(a.UsernamesRange, "Invalid usernames", err.Error())
				}
			}
			names = []string{a.Usernames[0], a.Usernames[1]}
		}
	default:
		errAt(a.StrategyRange, "Unsupported strategy", fmt.Sprintf("strategy %q is not supported: use \"single\" (one %s, password changed in place) or \"alternating\" (two %ss, no outage).", strategy, noun, noun))
	}
	return strategy, names, diags
}

// CheckPasswordLength refuses a password_length outside 16 to 99.
func CheckPasswordLength(env *plugin.Env, n int, r hcl.Range) hcl.Diagnostics {
	if n < 16 || n > 99 {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid password_length", Detail: "password_length must be between 16 and 99 (default 32 letters and digits).", Subject: env.Subject(r)}}
	}
	return nil
}

// DecodeAdmin is Decode with the admin username checked as an account
// name of at most maxName bytes.
func DecodeAdmin(env *plugin.Env, b *Block, maxName int) (*Credential, hcl.Diagnostics) {
	c, diags := Decode(env, b, env.DefRange)
	if c != nil && b != nil {
		if err := CheckRoleName(c.Username, maxName); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid admin username", Detail: err.Error(), Subject: env.Subject(b.UsernameRange)})
		}
	}
	return c, diags
}

// Common is the part of a database provider block every database kind
// has: the accounts, the password length and the admin block.
type Common struct {
	Accounts
	PasswordLength      int
	PasswordLengthRange hcl.Range
	Admin               *Block
}

// Decoded is a validated Common.
type Decoded struct {
	// Strategy is StrategySingle or StrategyAlternating.
	Strategy string
	// Names holds one account name for single, two for alternating.
	Names []string
	Admin *Credential
}

// DecodeCommon validates c: the password length, the admin block (its
// username an account name of at most maxName bytes) and the accounts, in
// that order. noun is what the database calls an account.
func DecodeCommon(env *plugin.Env, c Common, noun string, maxName int) (Decoded, hcl.Diagnostics) {
	diags := CheckPasswordLength(env, c.PasswordLength, c.PasswordLengthRange)
	admin, adiags := DecodeAdmin(env, c.Admin, maxName)
	strategy, names, sdiags := DecodeAccounts(env, c.Accounts, noun, maxName)
	diags = append(append(diags, adiags...), sdiags...)
	return Decoded{Strategy: strategy, Names: names, Admin: admin}, diags
}
