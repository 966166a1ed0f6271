package policies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/providers"
)

// Defaults of the expiry settings.
const (
	// DefaultExpiryLeadFraction: a key that expires is due when a quarter
	// of its lifetime is left.
	DefaultExpiryLeadFraction = 0.25
)

// DefaultExpiryNotify are the thresholds of the expiring notification.
var DefaultExpiryNotify = []time.Duration{24 * time.Hour, time.Hour}

// ExpiryLead says how long before a key's expiry it is due: a fixed
// duration, or a fraction of the key's lifetime (from its creation to its
// expiry).
type ExpiryLead struct {
	Duration time.Duration
	Fraction float64
}

// Before returns how long before expires a key created at created is due.
func (l ExpiryLead) Before(created, expires time.Time) time.Duration {
	if l.Duration > 0 {
		return l.Duration
	}
	f := l.Fraction
	if f <= 0 {
		f = DefaultExpiryLeadFraction
	}
	if created.IsZero() || !expires.After(created) {
		return 0
	}
	return time.Duration(f * float64(expires.Sub(created)))
}

// String is the setting as written: "25%" or a duration.
func (l ExpiryLead) String() string {
	if l.Duration > 0 {
		return FormatDuration(l.Duration)
	}
	f := l.Fraction
	if f <= 0 {
		f = DefaultExpiryLeadFraction
	}
	return strconv.FormatFloat(f*100, 'f', -1, 64) + "%"
}

// decodeExpiry reads expiry_lead, key_ttl and expiry_notify.
func (ld *loading) decodeExpiry(p *Policy, attrs hcl.Attributes, f *file) {
	s := &p.Schedule
	s.ExpiryLead = ExpiryLead{Fraction: DefaultExpiryLeadFraction}
	s.ExpiryNotify = slices.Clone(DefaultExpiryNotify)
	if a, ok := attrs["expiry_lead"]; ok {
		var v string
		if ld.decodeString(a, f.ctx, &v) {
			if pct, isPct := strings.CutSuffix(strings.TrimSpace(v), "%"); isPct {
				x, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
				if err != nil || x <= 0 || x >= 100 {
					ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid expiry_lead", fmt.Sprintf("expiry_lead %q: a percentage of the key's lifetime must be above 0%% and below 100%%, such as \"25%%\"; or write a duration such as \"2d\".", v)))
				} else {
					s.ExpiryLead = ExpiryLead{Fraction: x / 100}
				}
			} else if d, ok := ld.duration(a, f.ctx, positive); ok {
				s.ExpiryLead = ExpiryLead{Duration: d}
			}
		}
	}
	if a, ok := attrs["key_ttl"]; ok {
		if d, ok := ld.duration(a, f.ctx, positive); ok {
			if d < time.Minute {
				ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid key_ttl", "key_ttl must be at least 1m: a rotation needs time to create, serve and verify a key before it expires."))
			} else {
				s.KeyTTL = d
			}
		}
	}
	if a, ok := attrs["expiry_notify"]; ok {
		var list []string
		diags := decodeExpr(a.Expr, f.ctx, &list)
		ld.diags = append(ld.diags, diags...)
		if !diags.HasErrors() {
			s.ExpiryNotify = nil
			for _, v := range list {
				d, err := ParseDuration(v)
				if err != nil || d <= 0 {
					ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid expiry_notify", fmt.Sprintf("expiry_notify holds %q, not a positive duration; write the times before expiry to notify at, such as [\"24h\", \"1h\"], or [] for none.", v)))
					continue
				}
				s.ExpiryNotify = append(s.ExpiryNotify, d)
			}
			slices.Sort(s.ExpiryNotify)
			slices.Reverse(s.ExpiryNotify)
			s.ExpiryNotify = slices.Compact(s.ExpiryNotify)
		}
	}
}

// crossCheckExpiry validates the expiry settings against the provider.
func (ld *loading) crossCheckExpiry(p *Policy, at attrRanges) {
	s := p.Schedule
	if s.KeyTTL > 0 && s.ExpiryLead.Duration >= s.KeyTTL {
		ld.diags = append(ld.diags, errAt(at["expiry_lead"], "Invalid expiry_lead", fmt.Sprintf("expiry_lead (%s) must be shorter than key_ttl (%s): a key would be due the moment it is created.", FormatDuration(s.ExpiryLead.Duration), FormatDuration(s.KeyTTL))))
	}
	if s.KeyTTL > 0 && p.Provider.Provider != nil {
		if t, ok := p.Provider.Provider.(providers.KeyTTLTaker); !ok || !t.AcceptsKeyTTL() {
			ld.diags = append(ld.diags, errAt(at["key_ttl"], "Unsupported key_ttl", fmt.Sprintf("The %s provider of this policy cannot create keys with a lifetime, so key_ttl would be ignored. Remove key_ttl; the providers that honour it are exec (REKEY_KEY_TTL), vault_approle_secret_id, postgres (VALID UNTIL), mysql (whole days), kong (ttl) and http (a create request that uses {{ .KeyTTL }} or {{ .ExpiresAt }}).", p.Provider.Kind)))
		} else if c, ok := p.Provider.Provider.(providers.KeyTTLChecker); ok {
			if err := c.CheckKeyTTL(s.KeyTTL); err != nil {
				ld.diags = append(ld.diags, errAt(at["key_ttl"], "Unsupported key_ttl", fmt.Sprintf("The %s provider of this policy cannot create keys with a key_ttl of %s: %s.", p.Provider.Kind, FormatDuration(s.KeyTTL), err)))
			}
		}
	}
}
