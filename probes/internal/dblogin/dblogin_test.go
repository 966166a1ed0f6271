package dblogin

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	myprov "github.com/rekeyhq/rekey/providers/mysql"
	pgprov "github.com/rekeyhq/rekey/providers/postgres"
	rprov "github.com/rekeyhq/rekey/providers/redis"
	"github.com/rekeyhq/rekey/secret"
)

func TestFieldNamesAreTheProviders(t *testing.T) {
	for _, names := range [][5]string{
		{myprov.FieldUsername, myprov.FieldPassword, myprov.FieldHost, myprov.FieldPort, myprov.FieldDBName},
		{pgprov.FieldUsername, pgprov.FieldPassword, pgprov.FieldHost, pgprov.FieldPort, pgprov.FieldDBName},
		{rprov.FieldUsername, rprov.FieldPassword, rprov.FieldHost, rprov.FieldPort, rprov.FieldDBName},
	} {
		if names != [5]string{FieldUsername, FieldPassword, FieldHost, FieldPort, FieldDBName} {
			t.Errorf("a provider names its fields %v", names)
		}
	}
}

const canary = "CANARY-pw-7f3a"

func key(fields map[string]string) plugin.Key {
	v := secret.Fields{}
	for k, s := range fields {
		v[k] = secret.New(s)
	}
	return plugin.Key{ID: "k", Value: v}
}

func TestFrom(t *testing.T) {
	env := &plugin.Env{Policy: "p", Kind: "mysql"}
	full := map[string]string{"username": "app_b", "password": canary, "host": "db.internal", "port": "3306", "login": "other", "secret": "pw2"}
	for _, tc := range []struct {
		name               string
		host               string
		port               int
		userField, pwField string
		fields             map[string]string
		want               Creds
		err                string
	}{
		{name: "all from the key", fields: full, want: Creds{User: "app_b", Host: "db.internal", Port: 3306}},
		{name: "block's host and port win", host: "127.0.0.1", port: 13306, fields: full, want: Creds{User: "app_b", Host: "127.0.0.1", Port: 13306}},
		{name: "other fields", userField: "login", pwField: "secret", fields: full, want: Creds{User: "other", Host: "db.internal", Port: 3306}},
		{name: "no username", fields: map[string]string{"password": canary}, err: `mysql probe: the key has no field "username"`},
		{name: "no password", fields: map[string]string{"username": "u"}, err: `mysql probe: the key has no field "password"`},
		{name: "no host", fields: map[string]string{"username": "u", "password": canary, "port": "1"}, err: `no field "host"`},
		{name: "no port", fields: map[string]string{"username": "u", "password": canary, "host": "h"}, err: `no field "port"`},
		{name: "bad port", fields: map[string]string{"username": "u", "password": canary, "host": "h", "port": "x"}, err: "mysql probe: the key's port field is not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, diags := New(env, "mysql", tc.host, tc.port, hcl.Range{}, tc.userField, tc.pwField)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			c, err := l.From(key(tc.fields))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !plugin.IsPermanent(err) || strings.Contains(err.Error(), canary) {
					t.Fatalf("err = %v, want a permanent %q without the password", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pw := c.Password.Reveal()
			c.Password = secret.Value{}
			if c != tc.want {
				t.Errorf("creds %+v, want %+v", c, tc.want)
			}
			if pw != tc.fields[map[bool]string{true: "password", false: tc.pwField}[tc.pwField == ""]] {
				t.Errorf("password not the key's field")
			}
		})
	}
}

func TestPortIsChecked(t *testing.T) {
	env := &plugin.Env{Policy: "p", Kind: "mysql"}
	r := hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: 3, Column: 3}}
	for _, port := range []int{0, -1, 65536} {
		if _, diags := New(env, "mysql", "", port, r, "", ""); !diags.HasErrors() || diags[0].Summary != "Invalid port" || diags[0].Subject.Start.Line != 3 {
			t.Errorf("port %d: %v", port, diags)
		}
	}
	if _, diags := New(env, "mysql", "", 0, hcl.Range{}, "", ""); diags.HasErrors() {
		t.Errorf("unset port: %v", diags)
	}
}
