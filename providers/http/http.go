// Package http implements the http provider: a declarative client of any
// REST API that manages keys (an API gateway's admin API, a SaaS admin
// API). Each operation (create, list, delete, and optionally deactivate,
// activate and last_used) is a request whose path, headers and body are
// templates; the key id, its secret fields, its creation time, status and
// rotation id are read from JSON answers with JMESPath. See the README,
// "Provider http".
//
// The kong provider is built on the same machinery (NewFromSpec).
package http

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
)

// Kind is the provider block label.
const Kind = "http"

func init() { providers.Register(Kind, New) }

type config struct {
	BaseURL        string            `hcl:"base_url"`
	Target         *string           `hcl:"target,optional"`
	CAFile         *string           `hcl:"ca_file,optional"`
	RequestTimeout *string           `hcl:"request_timeout,optional"`
	Retries        *int              `hcl:"retries,optional"`
	MaxKeys        *int              `hcl:"max_keys,optional"`
	UsageDelay     *string           `hcl:"usage_delay,optional"`
	Headers        hcl.Expression    `hcl:"headers,optional"`
	Orphans        *string           `hcl:"orphans,optional"`
	CreateCommand  []string          `hcl:"create_command,optional"`
	CommandEnv     map[string]string `hcl:"command_env,optional"`
	Auth           *AuthBlock        `hcl:"auth,block"`
	Create         *requestConfig    `hcl:"create,block"`
	List           *requestConfig    `hcl:"list,block"`
	Delete         *requestConfig    `hcl:"delete,block"`
	Deactivate     *requestConfig    `hcl:"deactivate,block"`
	Activate       *requestConfig    `hcl:"activate,block"`
	LastUsed       *requestConfig    `hcl:"last_used,block"`

	BaseURLRange        hcl.Range `hcl:"base_url,attr_range"`
	TargetRange         hcl.Range `hcl:"target,attr_range"`
	CAFileRange         hcl.Range `hcl:"ca_file,attr_range"`
	RequestTimeoutRange hcl.Range `hcl:"request_timeout,attr_range"`
	RetriesRange        hcl.Range `hcl:"retries,attr_range"`
	MaxKeysRange        hcl.Range `hcl:"max_keys,attr_range"`
	UsageDelayRange     hcl.Range `hcl:"usage_delay,attr_range"`
	OrphansRange        hcl.Range `hcl:"orphans,attr_range"`
	CreateCommandRange  hcl.Range `hcl:"create_command,attr_range"`
	CommandEnvRange     hcl.Range `hcl:"command_env,attr_range"`
}

type requestConfig struct {
	Method           *string           `hcl:"method,optional"`
	Path             hcl.Expression    `hcl:"path"`
	Headers          hcl.Expression    `hcl:"headers,optional"`
	Body             hcl.Expression    `hcl:"body,optional"`
	ExpectStatus     hcl.Expression    `hcl:"expect_status,optional"`
	GoneStatus       hcl.Expression    `hcl:"gone_status,optional"`
	ID               *string           `hcl:"id,optional"`
	Value            map[string]string `hcl:"fields,optional"`
	CreatedAt        *string           `hcl:"created_at,optional"`
	ExpiresAt        *string           `hcl:"expires_at,optional"`
	ExpiresIn        *string           `hcl:"expires_in,optional"`
	Items            *string           `hcl:"items,optional"`
	Status           *string           `hcl:"status,optional"`
	ActiveValues     []string          `hcl:"active_values,optional"`
	InactiveValues   []string          `hcl:"inactive_values,optional"`
	RotationID       *string           `hcl:"rotation_id,optional"`
	RotationIDPrefix *string           `hcl:"rotation_id_prefix,optional"`
	Next             *string           `hcl:"next,optional"`
	LastUsed         *string           `hcl:"last_used,optional"`
	DefRange         hcl.Range         `hcl:",def_range"`

	MethodRange     hcl.Range `hcl:"method,attr_range"`
	IDRange         hcl.Range `hcl:"id,attr_range"`
	ValueRange      hcl.Range `hcl:"fields,attr_range"`
	CreatedAtRange  hcl.Range `hcl:"created_at,attr_range"`
	ExpiresAtRange  hcl.Range `hcl:"expires_at,attr_range"`
	ExpiresInRange  hcl.Range `hcl:"expires_in,attr_range"`
	ItemsRange      hcl.Range `hcl:"items,attr_range"`
	StatusRange     hcl.Range `hcl:"status,attr_range"`
	RotationIDRange hcl.Range `hcl:"rotation_id,attr_range"`
	NextRange       hcl.Range `hcl:"next,attr_range"`
	LastUsedRange   hcl.Range `hcl:"last_used,attr_range"`
}

// Defaults of the status lists.
var (
	defaultActive   = []string{"true", "active", "enabled"}
	defaultInactive = []string{"false", "inactive", "disabled", "revoked", "expired"}
)

var tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// opKind says what each request block may use.
type opKind struct {
	name   string
	method string
	expect []int
	gone   []int
	vars   []string
	// extraction attributes allowed (besides the request ones)
	allowed map[string]bool
}

var opKinds = map[string]opKind{
	"create":     {"create", http.MethodPost, []int{200, 201}, nil, []string{VarRotationID, VarPolicy, VarGeneration, VarOldKeyID, VarKeyTTL, VarExpiresAt, VarExpiresAtUnix}, set("id", "fields", "created_at", "expires_at", "expires_in")},
	"list":       {"list", http.MethodGet, []int{200}, nil, []string{VarPolicy}, set("id", "items", "status", "active_values", "inactive_values", "created_at", "expires_at", "expires_in", "rotation_id", "rotation_id_prefix", "next")},
	"delete":     {"delete", http.MethodDelete, []int{200, 202, 204}, []int{404, 410}, []string{VarKeyID, VarPolicy}, set("gone_status")},
	"deactivate": {"deactivate", http.MethodPut, []int{200, 201, 202, 204}, nil, []string{VarKeyID, VarPolicy}, set("gone_status")},
	"activate":   {"activate", http.MethodPut, []int{200, 201, 202, 204}, nil, []string{VarKeyID, VarPolicy}, set("gone_status")},
	"last_used":  {"last_used", http.MethodGet, []int{200}, nil, []string{VarKeyID, VarPolicy}, set("last_used")},
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// New decodes an http provider block.
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at(r)})
	}

	base, bdiags := ParseBaseURL(env, cfg.BaseURL, cfg.BaseURLRange)
	diags = append(diags, bdiags...)
	client := &Client{Kind: Kind, Policy: env.Policy, Base: base, Retries: DefaultRetries, Timeout: DefaultRequestTimeout}
	if cfg.CAFile != nil {
		client.CAFile = env.Path(*cfg.CAFile)
		diags = append(diags, CheckCAFile(client.CAFile, at(cfg.CAFileRange))...)
	}
	if cfg.RequestTimeout != nil {
		d, err := duration.Parse(*cfg.RequestTimeout)
		if err != nil || d <= 0 {
			errAt(cfg.RequestTimeoutRange, "Invalid request_timeout", "request_timeout must be a positive duration such as \"10s\".")
		}
		client.Timeout = d
	}
	if cfg.Retries != nil {
		if *cfg.Retries < 0 || *cfg.Retries > 20 {
			errAt(cfg.RetriesRange, "Invalid retries", "retries is between 0 and 20.")
		}
		client.Retries = *cfg.Retries
	}
	tok, adiags := DecodeAuth(env, cfg.Auth)
	diags = append(diags, adiags...)
	client.Token = tok

	headerVars := []string{}
	if cfg.Auth != nil {
		headerVars = append(headerVars, VarToken)
	}
	common, hdiags := headersAttr(env, cfg.Headers, "headers", headerVars)
	diags = append(diags, hdiags...)

	s := Spec{Client: client, Headers: common, Target: "http:" + env.Policy}
	if cfg.Target != nil {
		s.Target = *cfg.Target
		if s.Target == "" {
			errAt(cfg.TargetRange, "Empty target", "target names the credential this provider manages, such as \"kong:prod:orders-app\"; leave it out to use \"http:\" and the policy name.")
		}
	}
	decodeOp := func(rc *requestConfig, kind string) *Op {
		if rc == nil {
			return nil
		}
		op, d := decodeRequest(env, rc, opKinds[kind], cfg.Auth != nil)
		diags = append(diags, d...)
		return op
	}
	s.Create = decodeOp(cfg.Create, "create")
	s.List = decodeOp(cfg.List, "list")
	s.Delete = decodeOp(cfg.Delete, "delete")
	s.Deactivate = decodeOp(cfg.Deactivate, "deactivate")
	s.Activate = decodeOp(cfg.Activate, "activate")
	s.LastUsed = decodeOp(cfg.LastUsed, "last_used")
	switch {
	case cfg.Create == nil && cfg.CreateCommand == nil:
		errAt(env.DefRange, "Missing create request", "The http provider needs a create { ... } block: the request that makes a key. For an API that cannot create keys, run a command instead with create_command (see the README).")
	case cfg.Create != nil && cfg.CreateCommand != nil:
		errAt(cfg.CreateCommandRange, "Two ways to create", "Use a create { ... } request or create_command, not both.")
	case cfg.CreateCommand != nil:
		diags = append(diags, command.CheckArgv("create_command", cfg.CreateCommand, true, *at(cfg.CreateCommandRange))...)
		diags = append(diags, command.CheckEnv(cfg.CommandEnv, *at(cfg.CommandEnvRange))...)
		s.CreateCommand = &command.Command{
			Argv:         command.Resolve(cfg.CreateCommand, env.Path),
			Env:          cfg.CommandEnv,
			Timeout:      DefaultCommandTimeout,
			StderrLimit:  4 << 10,
			SecretStdout: true,
		}
	}
	if cfg.CommandEnv != nil && cfg.CreateCommand == nil {
		errAt(cfg.CommandEnvRange, "command_env without create_command", "command_env sets environment variables of create_command; add it or remove command_env.")
	}
	if cfg.Delete == nil {
		errAt(env.DefRange, "Missing delete request", "The http provider needs a delete { ... } block: the request that removes a key for good. For an API without deletion, deactivating for good is the closest (see the Express Gateway example).")
	}
	if (cfg.Deactivate == nil) != (cfg.Activate == nil) {
		r := env.DefRange
		if cfg.Deactivate != nil {
			r = cfg.Deactivate.DefRange
		} else if cfg.Activate != nil {
			r = cfg.Activate.DefRange
		}
		errAt(r, "Deactivate and activate go together", "Set both deactivate and activate, or neither: rekey re-activates a deactivated old key at once when a dependent still needs it, so it cannot deactivate a key it could not activate again.")
	}
	if cfg.MaxKeys != nil {
		s.MaxKeys = *cfg.MaxKeys
		switch {
		case s.MaxKeys < 2:
			errAt(cfg.MaxKeysRange, "Invalid max_keys", "max_keys must be at least 2: a rotation holds the old and the new key at once.")
		case cfg.List == nil:
			errAt(cfg.MaxKeysRange, "max_keys needs a list request", "rekey checks the key limit by counting the keys the list request returns. Add list { ... }, or remove max_keys.")
		}
	}
	if cfg.UsageDelay != nil {
		d, err := duration.Parse(*cfg.UsageDelay)
		switch {
		case err != nil || d < 0:
			errAt(cfg.UsageDelayRange, "Invalid usage_delay", "usage_delay is a duration such as \"15m\".")
		case cfg.LastUsed == nil:
			errAt(cfg.UsageDelayRange, "usage_delay needs a last_used request", "usage_delay says how late the last_used request may report a use. Add last_used { ... }, or remove usage_delay.")
		}
		s.UsageDelay = d
	}
	if cfg.Auth != nil && !diags.HasErrors() && !sendsToken(s) {
		errAt(cfg.Auth.DefRange, "The admin credential is never sent", "An auth block is configured but no header uses it: add, for example, headers = { Authorization = \"Bearer {{ .Token }}\" }.")
	}
	if s.Create != nil && uses(s.Create, VarOldKeyID) && cfg.List == nil {
		errAt(cfg.Create.DefRange, "create uses .OldKeyID without list", "rekey finds the old key id with the list request (the one active key). Add list { ... }.")
	}
	if !diags.HasErrors() {
		diags = append(diags, checkOrphans(env, s, cfg)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return NewFromSpec(s), diags
}

// Ways orphans are found, for the orphans attribute.
const (
	OrphansByRotationID = "rotation_id"
	OrphansByCreatedAt  = "created_at"
	OrphansManual       = "manual"
)

// checkOrphans says how a key made by an unrecorded create is found, and
// warns unless it is by rotation id or the operator acknowledged it with
// the orphans attribute.
func checkOrphans(env *plugin.Env, s Spec, cfg config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	at := env.Subject
	how := OrphansManual
	switch {
	case s.List != nil && s.List.RotationID != nil:
		how = OrphansByRotationID
		if s.Create != nil && !uses(s.Create, VarRotationID) {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "create does not send the rotation id", Detail: "list reads rotation_id from each key, but the create request never sends {{ .RotationID }}: put it in the key's name, tag or metadata.", Subject: at(cfg.List.RotationIDRange)}}
		}
	case s.List != nil && s.List.CreatedAt != nil:
		how = OrphansByCreatedAt
	}
	if cfg.Orphans != nil {
		switch *cfg.Orphans {
		case how:
			return nil
		case OrphansByRotationID, OrphansByCreatedAt, OrphansManual:
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid orphans", Detail: fmt.Sprintf("orphans = %q, but this configuration finds orphans %s. Set orphans = %q, or change the list request.", *cfg.Orphans, orphanText[how], how), Subject: at(cfg.OrphansRange)}}
		}
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid orphans", Detail: "orphans is \"rotation_id\", \"created_at\" or \"manual\".", Subject: at(cfg.OrphansRange)}}
	}
	switch how {
	case OrphansByCreatedAt:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Orphans can only be found by creation time", Detail: "The list request reads no rotation_id, so after a crash rekey recognises a key it made but could not record only by its creation time (after the rotation started, unknown to the journal). If the API can carry a name, tag or metadata, put {{ .RotationID }} in it at create and read it with rotation_id; else acknowledge with orphans = \"created_at\".", Subject: at(cfg.List.DefRange)})
	case OrphansManual:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Orphans cannot be found", Detail: "rekey cannot find a key made by a create it could not record (a crash, a lost answer): there is no list request reading rotation_id or created_at. Add one; or, if the API cannot list keys, acknowledge with orphans = \"manual\" and look for keys carrying the rotation id after a crash.", Subject: at(env.DefRange)})
	}
	return diags
}

var orphanText = map[string]string{
	OrphansByRotationID: "by the rotation id that list reads",
	OrphansByCreatedAt:  "by the creation time that list reads",
	OrphansManual:       "not at all (no list request reading rotation_id or created_at)",
}

func sendsToken(s Spec) bool {
	for _, h := range s.Headers {
		if h.Value.Uses(VarToken) {
			return true
		}
	}
	for _, op := range []*Op{s.Create, s.List, s.Delete, s.Deactivate, s.Activate, s.LastUsed} {
		if op == nil {
			continue
		}
		for _, h := range op.Headers {
			if h.Value.Uses(VarToken) {
				return true
			}
		}
	}
	return false
}

// ParseBaseURL checks a base_url: https, or http to this machine only (a
// key-management API answers with new secrets).
func ParseBaseURL(env *plugin.Env, raw string, r hcl.Range) (*url.URL, hcl.Diagnostics) {
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid base_url", Detail: detail, Subject: env.Subject(r)}}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return nil, bad("base_url must be an absolute URL such as \"https://kong-admin.internal:8444\".")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, bad("base_url must start with https://.")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, bad(fmt.Sprintf("base_url uses plain http to %s, which is not this machine: the admin credential and every new key would cross the network unencrypted. Use https (TLS is always verified; add a private CA with ca_file).", u.Hostname()))
	case u.User != nil:
		return nil, bad("base_url must not carry user info: give the admin credential with an auth block.")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, bad("base_url must not have a query or fragment; put them in each request's path.")
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckCAFile warns at load time about a ca_file that exists but holds no
// certificate (a missing file is an error at run time, so a CA can be put
// in place after validation).
func CheckCAFile(path string, r *hcl.Range) hcl.Diagnostics {
	if pem, err := os.ReadFile(path); err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid ca_file", Detail: fmt.Sprintf("%s holds no PEM certificate.", path), Subject: r}}
	}
	return nil
}

func decodeRequest(env *plugin.Env, rc *requestConfig, k opKind, auth bool) (*Op, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	at := env.Subject
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at(r)})
	}
	op := &Op{Method: k.method, Expect: k.expect, Gone: k.gone}
	if rc.Method != nil {
		op.Method = strings.ToUpper(*rc.Method)
		if !tokenRE.MatchString(op.Method) {
			errAt(rc.MethodRange, "Invalid method", fmt.Sprintf("%q is not an HTTP method; use GET, POST, PUT, PATCH or DELETE.", *rc.Method))
		}
	}
	what := k.name + " path"
	path, d := templateAttr(env, rc.Path, what, k.vars)
	diags = append(diags, d...)
	op.Path = path
	if path != nil && !strings.HasPrefix(path.Text, "/") {
		errAt(rc.Path.Range(), "Invalid path", "path starts with / and is relative to base_url, such as \"/consumers/orders-app/key-auth\".")
	}
	hv := append([]string(nil), k.vars...)
	if auth {
		hv = append(hv, VarToken)
	}
	op.Headers, d = headersAttr(env, rc.Headers, k.name+" headers", hv)
	diags = append(diags, d...)
	op.Body, d = templateAttr(env, rc.Body, k.name+" body", k.vars)
	diags = append(diags, d...)
	if codes, d := statusAttr(env, rc.ExpectStatus, "expect_status"); d != nil || codes != nil {
		diags = append(diags, d...)
		op.Expect = codes
	}
	if codes, d := statusAttr(env, rc.GoneStatus, "gone_status"); d != nil || codes != nil {
		diags = append(diags, d...)
		op.Gone = codes
		if !k.allowed["gone_status"] {
			errAt(rc.GoneStatus.Range(), "Unexpected gone_status", "gone_status is for delete, deactivate and activate.")
		}
	}

	jp := func(name string, v *string, r hcl.Range) *Path {
		if v == nil {
			return nil
		}
		if !k.allowed[name] {
			errAt(r, "Unexpected "+name, fmt.Sprintf("%s is not read from the answer of %s; it belongs to %s.", name, k.name, ownerOf(name)))
			return nil
		}
		p, err := CompilePath(*v)
		if err != nil {
			errAt(r, "Invalid JMESPath in "+name, fmt.Sprintf("%s is a JMESPath expression (https://jmespath.org) into the JSON answer, such as \"data[0].id\"; this one does not compile: %s.", name, err))
			return nil
		}
		return p
	}
	op.ID = jp("id", rc.ID, rc.IDRange)
	op.CreatedAt = jp("created_at", rc.CreatedAt, rc.CreatedAtRange)
	op.ExpiresAt = jp("expires_at", rc.ExpiresAt, rc.ExpiresAtRange)
	op.ExpiresIn = jp("expires_in", rc.ExpiresIn, rc.ExpiresInRange)
	if rc.ExpiresAt != nil && rc.ExpiresIn != nil {
		errAt(rc.ExpiresInRange, "expires_at and expires_in", "Read a key's expiry either as a time (expires_at) or as the seconds it has left (expires_in), not both.")
	}
	op.Items = jp("items", rc.Items, rc.ItemsRange)
	op.Status = jp("status", rc.Status, rc.StatusRange)
	op.RotationID = jp("rotation_id", rc.RotationID, rc.RotationIDRange)
	op.Next = jp("next", rc.Next, rc.NextRange)
	op.LastUsed = jp("last_used", rc.LastUsed, rc.LastUsedRange)
	if rc.Value != nil {
		if !k.allowed["fields"] {
			errAt(rc.ValueRange, "Unexpected fields", "fields are read from the answer of create only.")
		} else {
			names := make([]string, 0, len(rc.Value))
			for n := range rc.Value {
				names = append(names, n)
			}
			sort.Strings(names)
			op.Value = map[string]*Path{}
			for _, n := range names {
				if n == "" {
					errAt(rc.ValueRange, "Invalid fields", "A key field needs a name.")
					continue
				}
				text := rc.Value[n]
				if p := jp("fields", &text, rc.ValueRange); p != nil {
					op.Value[n] = p
				}
			}
		}
	}
	op.Active, op.Inactive = defaultActive, defaultInactive
	if rc.ActiveValues != nil {
		op.Active = lower(rc.ActiveValues)
	}
	if rc.InactiveValues != nil {
		op.Inactive = lower(rc.InactiveValues)
	}
	if rc.RotationIDPrefix != nil {
		op.RotationIDPrefix = *rc.RotationIDPrefix
	}
	if (rc.ActiveValues != nil || rc.InactiveValues != nil) && rc.Status == nil {
		errAt(rc.DefRange, "active_values without status", "active_values and inactive_values interpret the status attribute; add status.")
	}
	if rc.RotationIDPrefix != nil && rc.RotationID == nil {
		errAt(rc.DefRange, "rotation_id_prefix without rotation_id", "rotation_id_prefix is stripped from what rotation_id reads; add rotation_id.")
	}
	switch k.name {
	case "create":
		if rc.ID == nil {
			errAt(rc.DefRange, "Missing id", "create needs id: the JMESPath of the new key's id in the answer, such as \"id\".")
		}
		if len(rc.Value) == 0 {
			errAt(rc.DefRange, "Missing fields", "create needs fields: the key's secret fields and where each is in the answer, such as fields = { api_key = \"key\" }.")
		}
	case "list":
		if rc.ID == nil {
			errAt(rc.DefRange, "Missing id", "list needs id: the JMESPath of a key's id in each item, such as \"id\".")
		}
	case "last_used":
		if rc.LastUsed == nil {
			errAt(rc.DefRange, "Missing last_used", "last_used needs last_used: the JMESPath of the time of last use in the answer (null for never).")
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return op, diags
}

func ownerOf(name string) string {
	var owners []string
	for _, k := range []string{"create", "list", "delete", "deactivate", "activate", "last_used"} {
		if opKinds[k].allowed[name] {
			owners = append(owners, k)
		}
	}
	return strings.Join(owners, " and ")
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// headersAttr decodes a map of header templates, each checked at its own
// position.
func headersAttr(env *plugin.Env, expr hcl.Expression, what string, vars []string) ([]Header, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	if v, diags := expr.Value(env.EvalContext); diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + what, Detail: what + " is a map of header names to values, such as { Kong-Admin-Token = \"{{ .Token }}\" }.", Subject: expr.Range().Ptr()}}
	}
	var out []Header
	for _, kv := range pairs {
		k, d := kv.Key.Value(env.EvalContext)
		diags = append(diags, d...)
		if d.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
			continue
		}
		name := k.AsString()
		if !tokenRE.MatchString(name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid header name", Detail: fmt.Sprintf("%q is not a valid HTTP header name.", name), Subject: kv.Key.Range().Ptr()})
			continue
		}
		t, d := templateAttr(env, kv.Value, what+" "+name, vars)
		diags = append(diags, d...)
		if t != nil {
			out = append(out, Header{Name: http.CanonicalHeaderKey(name), Value: t})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, diags
}

// statusAttr reads a status code or a list of them; nil when unset.
func statusAttr(env *plugin.Env, expr hcl.Expression, name string) ([]int, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	v, diags := expr.Value(env.EvalContext)
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	bad := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + name, Detail: name + " is a status code such as 200, or a list such as [200, 204]; codes are between 100 and 599.", Subject: expr.Range().Ptr()}}
	var vals []cty.Value
	switch {
	case !v.IsKnown():
		return nil, bad
	case v.Type() == cty.Number:
		vals = []cty.Value{v}
	case v.Type().IsTupleType() || v.Type().IsListType():
		if v.LengthInt() == 0 {
			return nil, bad
		}
		vals = v.AsValueSlice()
	default:
		return nil, bad
	}
	var codes []int
	for _, c := range vals {
		if c.IsNull() || !c.IsKnown() || c.Type() != cty.Number {
			return nil, bad
		}
		bf := c.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || n < 100 || n > 599 {
			return nil, bad
		}
		codes = append(codes, int(n))
	}
	return codes, nil
}
