package policies

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Journal back ends a `journal "KIND"` block may name. Without the block
// the journal is the embedded bbolt file in state_dir.
const (
	JournalEtcd = "etcd"
)

// Defaults of the etcd journal.
const (
	DefaultEtcdPrefix   = "/rekey/"
	DefaultEtcdLeaseTTL = 10 * time.Second
)

// JournalSettings configure a shared journal (`journal "etcd" { ... }`):
// several instances share it and elect one owner of the policies.
type JournalSettings struct {
	// Kind is the back end: "etcd".
	Kind      string
	Endpoints []string
	// Prefix is put before every key; it ends with "/".
	Prefix                    string
	CAFile, CertFile, KeyFile string
	// LeaseTTL is how long the owner's lease lives without renewal: the
	// longest a failover waits, and the longest a paused owner is trusted.
	LeaseTTL time.Duration
	// Instance names this instance in the election, status, audit
	// records and metrics; default the host name.
	Instance string
	DefRange hcl.Range
}

var instanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (ld *loading) decodeJournal(blk *hcl.Block, f *file) {
	kind := blk.Labels[0]
	if kind != JournalEtcd {
		ld.diags = append(ld.diags, errAt(blk.LabelRanges[0], "Unknown journal kind", fmt.Sprintf("The journal kind %q is not known.%s The only shared journal is \"etcd\"; without a journal block rekey uses its embedded journal in state_dir.", kind, didYouMean(kind, []string{JournalEtcd}))))
		return
	}
	content, diags := blk.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "endpoints", Required: true}, {Name: "prefix"}, {Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"},
		{Name: "lease_ttl"}, {Name: "instance"},
	}})
	ld.diags = append(ld.diags, diags...)
	js := &JournalSettings{Kind: kind, Prefix: DefaultEtcdPrefix, LeaseTTL: DefaultEtcdLeaseTTL, DefRange: blk.DefRange}
	if h, err := os.Hostname(); err == nil {
		js.Instance = h
	}
	if attr, ok := content.Attributes["endpoints"]; ok {
		var eps []string
		d := decodeExpr(attr.Expr, f.ctx, &eps)
		ld.diags = append(ld.diags, d...)
		if !d.HasErrors() {
			if len(eps) == 0 {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid endpoints", "endpoints must list at least one etcd client URL, such as \"https://etcd-1:2379\"; list every member so that the journal survives one member's loss."))
			}
			for _, ep := range eps {
				u, err := url.Parse(ep)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid endpoint", fmt.Sprintf("The endpoint %s is not an etcd client URL; use http://HOST:PORT or https://HOST:PORT.", quoteShort(ep))))
				}
			}
			js.Endpoints = eps
		}
	}
	if attr, ok := content.Attributes["prefix"]; ok {
		var p string
		if ld.decodeString(attr, f.ctx, &p) {
			if p == "" || !strings.HasSuffix(p, "/") {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid prefix", fmt.Sprintf("prefix %s must not be empty and must end with \"/\", such as \"/rekey/prod/\"; instances that share it share the policies.", quoteShort(p))))
			}
			js.Prefix = p
		}
	}
	for _, a := range []struct {
		name string
		dst  *string
	}{{"ca_file", &js.CAFile}, {"cert_file", &js.CertFile}, {"key_file", &js.KeyFile}} {
		attr, ok := content.Attributes[a.name]
		if !ok {
			continue
		}
		var p string
		if ld.decodeString(attr, f.ctx, &p) {
			if p == "" {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid "+a.name, a.name+" must not be empty; leave it out instead."))
				continue
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(f.dir, p)
			}
			*a.dst = filepath.Clean(p)
		}
	}
	if (js.CertFile == "") != (js.KeyFile == "") {
		ld.diags = append(ld.diags, errAt(blk.DefRange, "Incomplete client certificate", "cert_file and key_file go together: set both for client certificate authentication, or neither."))
	}
	if attr, ok := content.Attributes["lease_ttl"]; ok {
		var s string
		if ld.decodeString(attr, f.ctx, &s) {
			d, err := ParseDuration(s)
			switch {
			case err != nil:
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid lease_ttl", fmt.Sprintf("lease_ttl %s is not a duration: %v. Use such as \"10s\".", quoteShort(s), err)))
			case d < 2*time.Second || d > 5*time.Minute || d%time.Second != 0:
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid lease_ttl", fmt.Sprintf("lease_ttl %s must be whole seconds between 2s and 5m: it is how long a failover waits for a lost owner, and how long a paused owner is still trusted.", quoteShort(s))))
			default:
				js.LeaseTTL = d
			}
		}
	}
	if attr, ok := content.Attributes["instance"]; ok {
		var s string
		if ld.decodeString(attr, f.ctx, &s) {
			if !instanceName.MatchString(s) {
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid instance", fmt.Sprintf("instance %s must be 1 to 63 letters, digits, dots, dashes or underscores, starting with a letter or digit; it names this instance in status, metrics and audit records. Give every instance its own.", quoteShort(s))))
			}
			js.Instance = s
		}
	} else if !instanceName.MatchString(js.Instance) {
		ld.diags = append(ld.diags, errAt(blk.DefRange, "Missing instance", fmt.Sprintf("The host name %s cannot name this instance; set instance = \"NAME\".", quoteShort(js.Instance))))
	}
	ld.cfg.Journal = js
}
