package dbadmin

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
)

func TestDecodeAccounts(t *testing.T) {
	env := &plugin.Env{Policy: "p", Kind: "postgres"}
	at := func(line int) hcl.Range { return hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: line, Column: 3}} }
	base := Accounts{StrategyRange: at(2), UsernameRange: at(3), UsernamesRange: at(4)}
	with := func(f func(a *Accounts)) Accounts { a := base; f(&a); return a }
	for _, tc := range []struct {
		name     string
		a        Accounts
		strategy string
		names    []string
		summary  string
		line     int
		detail   string
	}{
		{name: "single by default", a: with(func(a *Accounts) { a.Username = "app" }), strategy: StrategySingle, names: []string{"app"}},
		{name: "alternating by usernames", a: with(func(a *Accounts) { a.Usernames = []string{"app_a", "app_b"} }), strategy: StrategyAlternating, names: []string{"app_a", "app_b"}},
		{name: "single with usernames", a: with(func(a *Accounts) { a.Strategy, a.Username, a.Usernames = "single", "app", []string{"a", "b"} }),
			strategy: StrategySingle, summary: "usernames with strategy single", line: 4, detail: "rotates one role"},
		{name: "single without a name", a: base, strategy: StrategySingle, summary: "Invalid username", line: 3, detail: "the role whose password"},
		{name: "alternating with username", a: with(func(a *Accounts) { a.Strategy, a.Username, a.Usernames = "alternating", "x", []string{"a", "b"} }),
			strategy: StrategyAlternating, summary: "username with strategy alternating", line: 3, detail: "two roles"},
		{name: "alternating with one name", a: with(func(a *Accounts) { a.Strategy, a.Usernames = "alternating", []string{"a"} }),
			strategy: StrategyAlternating, summary: "Invalid usernames", line: 4, detail: "exactly two different roles"},
		{name: "alternating with the same name twice", a: with(func(a *Accounts) { a.Usernames = []string{"a", "a"} }),
			strategy: StrategyAlternating, summary: "Invalid usernames", line: 4},
		{name: "injection in a name", a: with(func(a *Accounts) { a.Usernames = []string{"a", "b'; DROP"} }),
			strategy: StrategyAlternating, summary: "Invalid usernames", line: 4, detail: "injection"},
		{name: "unknown strategy", a: with(func(a *Accounts) { a.Strategy = "rolling" }), strategy: "rolling", summary: "Unsupported strategy", line: 2, detail: `"rolling" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			strategy, names, diags := DecodeAccounts(env, tc.a, "role", 63)
			if strategy != tc.strategy {
				t.Errorf("strategy %q, want %q", strategy, tc.strategy)
			}
			if tc.summary == "" {
				if diags.HasErrors() || strings.Join(names, ",") != strings.Join(tc.names, ",") {
					t.Errorf("names %v, diags %v; want %v", names, diags, tc.names)
				}
				return
			}
			if len(diags) != 1 || diags[0].Summary != tc.summary || diags[0].Subject == nil || diags[0].Subject.Start.Line != tc.line || !strings.Contains(diags[0].Detail, tc.detail) {
				t.Errorf("diags %v, want one %q at line %d saying %q", diags, tc.summary, tc.line, tc.detail)
			}
		})
	}
}

func TestCheckPasswordLength(t *testing.T) {
	env := &plugin.Env{Policy: "p"}
	for n, ok := range map[int]bool{15: false, 16: true, 32: true, 99: true, 100: false} {
		if got := !CheckPasswordLength(env, n, hcl.Range{}).HasErrors(); got != ok {
			t.Errorf("password_length %d accepted %v, want %v", n, got, ok)
		}
	}
}

func TestDecodeCommonReportsEachPart(t *testing.T) {
	env := &plugin.Env{Policy: "p", Kind: "mysql", DefRange: hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: 1, Column: 1}}}
	d, diags := DecodeCommon(env, Common{Accounts: Accounts{Usernames: []string{"a", "b"}}, PasswordLength: 8}, "account", 32)
	var got []string
	for _, diag := range diags {
		got = append(got, diag.Summary)
	}
	if strings.Join(got, "|") != "Invalid password_length|Missing admin block" || d.Strategy != StrategyAlternating || len(d.Names) != 2 {
		t.Errorf("diags %q, decoded %+v", got, d)
	}
	d, diags = DecodeCommon(env, Common{Accounts: Accounts{Username: "app"}, PasswordLength: 32, Admin: &Block{Username: "rekey_admin", PasswordEnv: "PW"}}, "account", 32)
	if diags.HasErrors() || d.Strategy != StrategySingle || d.Names[0] != "app" || d.Admin == nil || d.Admin.Username != "rekey_admin" {
		t.Errorf("diags %v, decoded %+v", diags, d)
	}
}
