// Package kong implements the kong provider: the key-auth credentials of
// one Kong consumer, through the Kong Admin API (optionally in a
// workspace) or a Kong Konnect control plane. It is the http provider's
// machinery with Kong's requests built in: create
// POST /consumers/{consumer}/key-auth with tags carrying the rotation id
// (and an optional ttl), list GET /consumers/{consumer}/key-auth following
// "next", delete DELETE /consumers/{consumer}/key-auth/{id}. A key's
// expiry is read from the ttl Kong shows (the seconds it has left); a
// policy's key_ttl is sent as ttl when the block sets none.
//
// Kong cannot disable a key-auth credential: the provider has no
// deactivate or last_used, so a revoke soak relies on dependent probes
// alone and revoke.wait_unused has nothing to wait on.
package kong

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	httpprov "github.com/rekeyhq/rekey/providers/http"
)

// Kind is the provider block label.
const Kind = "kong"

// Tags rekey puts on every credential it creates.
const (
	TagRekey          = "rekey"
	TagRotationPrefix = "rekey-rotation:"
	TagPolicyPrefix   = "rekey-policy:"
)

// FieldKey is the name of the key's one secret field.
const FieldKey = "key"

// MaxTTL is Kong's largest ttl, in seconds.
const MaxTTL = 100000000

func init() { providers.Register(Kind, New) }

type config struct {
	AdminURL       *string             `hcl:"admin_url,optional"`
	Konnect        *konnectBlock       `hcl:"konnect,block"`
	Workspace      *string             `hcl:"workspace,optional"`
	Consumer       string              `hcl:"consumer"`
	TTL            *string             `hcl:"ttl,optional"`
	Tags           []string            `hcl:"tags,optional"`
	CAFile         *string             `hcl:"ca_file,optional"`
	RequestTimeout *string             `hcl:"request_timeout,optional"`
	Retries        *int                `hcl:"retries,optional"`
	Auth           *httpprov.AuthBlock `hcl:"auth,block"`

	AdminURLRange       hcl.Range `hcl:"admin_url,attr_range"`
	WorkspaceRange      hcl.Range `hcl:"workspace,attr_range"`
	ConsumerRange       hcl.Range `hcl:"consumer,attr_range"`
	TTLRange            hcl.Range `hcl:"ttl,attr_range"`
	TagsRange           hcl.Range `hcl:"tags,attr_range"`
	CAFileRange         hcl.Range `hcl:"ca_file,attr_range"`
	RequestTimeoutRange hcl.Range `hcl:"request_timeout,attr_range"`
	RetriesRange        hcl.Range `hcl:"retries,attr_range"`
}

type konnectBlock struct {
	// Region is the Konnect region (us, eu, au, me, in) or a full API
	// host for tests.
	Region         string    `hcl:"region"`
	ControlPlaneID string    `hcl:"control_plane_id"`
	APIURL         *string   `hcl:"api_url,optional"`
	RegionRange    hcl.Range `hcl:"region,attr_range"`
	CPRange        hcl.Range `hcl:"control_plane_id,attr_range"`
	APIURLRange    hcl.Range `hcl:"api_url,attr_range"`
	DefRange       hcl.Range `hcl:",def_range"`
}

var (
	// Compiled at first use, not at start: every rekey command would pay
	// for them.
	nameRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`) })
	regionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z]{2,8}$`) })
	tagRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x21-\x2b\x2d-\x2e\x30-\x7e]+$`) })
)

// New decodes a kong provider block.
func New(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: env.Subject(r)})
	}

	var base *url.URL
	konnect := cfg.Konnect != nil
	switch {
	case cfg.AdminURL != nil && konnect:
		errAt(cfg.AdminURLRange, "admin_url and konnect", "Use admin_url for a Kong Admin API, or a konnect block for a Kong Konnect control plane, not both.")
	case cfg.AdminURL != nil:
		u, d := httpprov.ParseBaseURL(env, *cfg.AdminURL, cfg.AdminURLRange)
		diags = append(diags, d...)
		base = u
	case konnect:
		k := cfg.Konnect
		raw := "https://" + k.Region + ".api.konghq.com"
		r := k.RegionRange
		if k.APIURL != nil {
			raw, r = *k.APIURL, k.APIURLRange
		} else if !regionRE().MatchString(k.Region) {
			errAt(k.RegionRange, "Invalid region", "region is a Konnect region such as \"us\", \"eu\", \"au\".")
		}
		if !nameRE().MatchString(k.ControlPlaneID) {
			errAt(k.CPRange, "Invalid control_plane_id", "control_plane_id is the id of the Konnect control plane (a UUID).")
		}
		if cfg.Workspace != nil {
			errAt(cfg.WorkspaceRange, "workspace with konnect", "Konnect control planes have no workspaces; remove workspace.")
		}
		u, d := httpprov.ParseBaseURL(env, strings.TrimSuffix(raw, "/")+"/v2/control-planes/"+k.ControlPlaneID+"/core-entities", r)
		diags = append(diags, d...)
		base = u
	default:
		errAt(env.DefRange, "Missing admin_url", "Give the Kong Admin API with admin_url = \"https://kong-admin.internal:8444\", or a konnect { region = \"us\" control_plane_id = \"...\" } block.")
	}
	if !nameRE().MatchString(cfg.Consumer) {
		errAt(cfg.ConsumerRange, "Invalid consumer", "consumer is the consumer's username or id, such as \"orders-app\".")
	}
	prefix := ""
	if cfg.Workspace != nil {
		if !nameRE().MatchString(*cfg.Workspace) {
			errAt(cfg.WorkspaceRange, "Invalid workspace", "workspace is the name of a Kong Enterprise workspace, such as \"payments\".")
		}
		prefix = "/" + *cfg.Workspace
	}
	ttl := 0
	if cfg.TTL != nil {
		d, err := duration.Parse(*cfg.TTL)
		secs := int(d.Seconds())
		if err != nil || d <= 0 || secs > MaxTTL || d.Truncate(1e9) != d {
			errAt(cfg.TTLRange, "Invalid ttl", fmt.Sprintf("ttl is a whole number of seconds up to Kong's limit of %d (about 3 years), such as \"90d\"; Kong deletes the credential when it expires.", MaxTTL))
		}
		ttl = secs
	}
	for _, tag := range cfg.Tags {
		if !tagRE().MatchString(tag) || strings.HasPrefix(tag, "rekey") {
			errAt(cfg.TagsRange, "Invalid tags", fmt.Sprintf("Kong tags are printable ASCII without spaces, commas or slashes, and rekey's own start with \"rekey\"; %q is not allowed.", tag))
		}
	}
	client := &httpprov.Client{Kind: Kind, Policy: env.Policy, Base: base, Retries: httpprov.DefaultRetries, Timeout: httpprov.DefaultRequestTimeout}
	if cfg.CAFile != nil {
		client.CAFile = env.Path(*cfg.CAFile)
		diags = append(diags, httpprov.CheckCAFile(client.CAFile, env.Subject(cfg.CAFileRange))...)
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
	tok, d := httpprov.DecodeAuth(env, cfg.Auth)
	diags = append(diags, d...)
	client.Token = tok
	if konnect && tok == nil && !diags.HasErrors() {
		errAt(cfg.Konnect.DefRange, "Konnect needs a token", "Konnect requires a personal or system access token: add auth { token_file = \"/etc/rekey/konnect-token\" }.")
	}
	if diags.HasErrors() {
		return nil, diags
	}

	var headers []httpprov.Header
	if tok != nil {
		if konnect {
			headers = append(headers, httpprov.Header{Name: "Authorization", Value: httpprov.MustTemplate("Bearer {{ .Token }}")})
		} else {
			headers = append(headers, httpprov.Header{Name: "Kong-Admin-Token", Value: httpprov.MustTemplate("{{ .Token }}")})
		}
	}
	keyAuth := prefix + "/consumers/" + escape(cfg.Consumer) + "/key-auth"
	var create strings.Builder
	create.WriteString(`{"tags": [` + strconv.Quote(TagRekey) + `, {{ printf "` + TagRotationPrefix + `%s" .RotationID | json }}, {{ printf "` + TagPolicyPrefix + `%s" .Policy | json }}`)
	for _, tag := range cfg.Tags {
		create.WriteString(", " + strconv.Quote(tag))
	}
	create.WriteString("]")
	if ttl > 0 {
		create.WriteString(`, "ttl": ` + strconv.Itoa(ttl))
	} else {
		create.WriteString(`{{ if .KeyTTL }}, "ttl": {{ .KeyTTL }}{{ end }}`)
	}
	create.WriteString("}")
	next := "next"
	if konnect {
		next = "offset && join('', ['?size=100&offset=', offset])"
	}
	target := fmt.Sprintf("kong:%s%s:%s", base.Host, base.EscapedPath()+prefix, cfg.Consumer)
	s := httpprov.Spec{
		Target:  target,
		Client:  client,
		Headers: headers,
		Create: &httpprov.Op{
			Method:    "POST",
			Path:      httpprov.MustTemplate(keyAuth),
			Body:      httpprov.MustTemplate(create.String()),
			Expect:    []int{201, 200},
			ID:        httpprov.MustPath("id"),
			Value:     map[string]*httpprov.Path{FieldKey: httpprov.MustPath("key")},
			CreatedAt: httpprov.MustPath("created_at"),
			ExpiresIn: httpprov.MustPath("ttl"),
		},
		List: &httpprov.Op{
			Method:           "GET",
			Path:             httpprov.MustTemplate(keyAuth + "?size=100"),
			Expect:           []int{200},
			Items:            httpprov.MustPath("data"),
			ID:               httpprov.MustPath("id"),
			CreatedAt:        httpprov.MustPath("created_at"),
			ExpiresIn:        httpprov.MustPath("ttl"),
			RotationID:       httpprov.MustPath("tags"),
			RotationIDPrefix: TagRotationPrefix,
			Next:             httpprov.MustPath(next),
		},
		Delete: &httpprov.Op{
			Method: "DELETE",
			Path:   httpprov.MustTemplate(keyAuth + "/{{ .KeyID }}"),
			Expect: []int{200, 204},
		},
	}
	return &Provider{Provider: httpprov.NewFromSpec(s).(*httpprov.Provider), ttl: ttl}, diags
}

// Provider is a kong provider: the http provider's machinery with Kong's
// requests, and Kong's ttl for key_ttl.
type Provider struct {
	*httpprov.Provider
	ttl int
}

var (
	_ providers.KeyTTLTaker   = (*Provider)(nil)
	_ providers.KeyTTLChecker = (*Provider)(nil)
)

// AcceptsKeyTTL implements providers.KeyTTLTaker: a policy's key_ttl is
// sent as the credential's ttl, and Kong deletes the credential then.
func (p *Provider) AcceptsKeyTTL() bool { return true }

// CheckKeyTTL implements providers.KeyTTLChecker: Kong takes whole seconds
// up to MaxTTL, and a key_ttl would contradict the provider's own ttl.
func (p *Provider) CheckKeyTTL(d time.Duration) error {
	switch {
	case p.ttl > 0:
		return fmt.Errorf("the provider's ttl attribute already gives every credential a lifetime of %s; set the lifetime in one place: remove ttl (key_ttl also makes the scheduler count from it) or remove key_ttl", duration.Format(time.Duration(p.ttl)*time.Second))
	case d%time.Second != 0:
		return fmt.Errorf("key_ttl must be a whole number of seconds, as Kong's ttl is")
	case d/time.Second > MaxTTL:
		return fmt.Errorf("key_ttl must be at most %d seconds (about 3 years), Kong's largest ttl", MaxTTL)
	}
	return nil
}

// escape percent-encodes a path segment fully (consumer names are
// checked, but an id or name with a dot stays readable).
func escape(s string) string { return url.PathEscape(s) }
