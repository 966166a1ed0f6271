// Package dblogin holds what the database probes (mysql, postgres, redis)
// share: which fields of a key they log in with, and where they log in
// (the key's host and port unless the probe block names them).
package dblogin

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// The field names the database providers give their keys.
const FieldUsername, FieldPassword, FieldHost, FieldPort, FieldDBName = "username", "password", "host", "port", "dbname"

// Login is where and with which fields of a key a probe logs in.
type Login struct {
	kind               string
	host               string
	port               int
	userField, pwField string
}

// New decodes the shared attributes of a probe block: host and port (empty
// and zero: the key's), username_field and password_field (default
// username and password). kind names the probe in errors.
func New(env *plugin.Env, kind, host string, port int, portRange hcl.Range, userField, pwField string) (*Login, hcl.Diagnostics) {
	l := &Login{kind: kind, host: host, port: port, userField: userField, pwField: pwField}
	if l.userField == "" {
		l.userField = FieldUsername
	}
	if l.pwField == "" {
		l.pwField = FieldPassword
	}
	var diags hcl.Diagnostics
	if portRange != (hcl.Range{}) && (port < 1 || port > 65535) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port", Detail: "port must be between 1 and 65535.", Subject: env.Subject(portRange)})
	}
	return l, diags
}

// Creds is what a probe logs in with.
type Creds struct {
	User     string
	Password secret.Value
	Host     string
	Port     int
}

// From reads the credentials and the address from key. A missing field is
// a permanent error that names it (never its value).
func (l *Login) From(key plugin.Key) (Creds, error) {
	user, err := l.Field(key, l.userField)
	if err != nil {
		return Creds{}, err
	}
	if _, err := l.Field(key, l.pwField); err != nil {
		return Creds{}, err
	}
	c := Creds{User: user, Password: key.Value[l.pwField], Host: l.host, Port: l.port}
	if c.Host == "" {
		if c.Host, err = l.Field(key, FieldHost); err != nil {
			return Creds{}, err
		}
	}
	if c.Port == 0 {
		ps, err := l.Field(key, FieldPort)
		if err != nil {
			return Creds{}, err
		}
		if c.Port, err = strconv.Atoi(ps); err != nil {
			return Creds{}, plugin.Permanent(fmt.Errorf("%s probe: the key's port field is not a number", l.kind))
		}
	}
	return c, nil
}

// Field returns the named field of key, or a permanent error naming it.
func (l *Login) Field(key plugin.Key, name string) (string, error) {
	v, ok := key.Value[name]
	if !ok || v.IsZero() {
		return "", plugin.Permanent(fmt.Errorf("%s probe: the key has no field %q (fields: %v)", l.kind, name, key.Value.Names()))
	}
	return v.Reveal(), nil
}
