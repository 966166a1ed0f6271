package policies

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadPolicy(t *testing.T, attrs string) (*Policy, string) {
	t.Helper()
	src := `
policy "p" {
  every = "30d"
` + attrs + `
  provider "test" {
    name = "p"
  }
  sink "test" {
    path = "p.env"
  }
  probe "test" {
    target = "key"
  }
}
`
	path := filepath.Join(t.TempDir(), "rekey.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Loader{LookupEnv: testEnv, skipHostChecks: true}
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		return nil, render(t, l.Files(), diags)
	}
	return cfg.Policies[0], ""
}

// TestExpirySettings: expiry_lead takes a duration or a percentage of the
// lifetime (default 25%), expiry_notify a list of durations (default 24h
// and 1h, longest first), and bad values are errors at their position.
func TestExpirySettings(t *testing.T) {
	p, errs := loadPolicy(t, "")
	if errs != "" {
		t.Fatal(errs)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := p.Schedule.ExpiryLead.Before(created, created.Add(8*24*time.Hour)); got != 48*time.Hour || p.Schedule.ExpiryLead.String() != "25%" {
		t.Errorf("default lead: %s (%s), want 48h of an 8-day lifetime", got, p.Schedule.ExpiryLead)
	}
	if !slices.Equal(p.Schedule.ExpiryNotify, []time.Duration{24 * time.Hour, time.Hour}) || p.Schedule.KeyTTL != 0 {
		t.Errorf("defaults: notify %v, key_ttl %s", p.Schedule.ExpiryNotify, p.Schedule.KeyTTL)
	}
	p, errs = loadPolicy(t, `expiry_lead = "10%"
expiry_notify = ["1h", "12h", "1h"]`)
	if errs != "" {
		t.Fatal(errs)
	}
	if got := p.Schedule.ExpiryLead.Before(created, created.Add(10*time.Hour)); got != time.Hour {
		t.Errorf("10%% of 10h: %s", got)
	}
	if !slices.Equal(p.Schedule.ExpiryNotify, []time.Duration{12 * time.Hour, time.Hour}) {
		t.Errorf("notify %v, want [12h 1h]", p.Schedule.ExpiryNotify)
	}
	p, errs = loadPolicy(t, `expiry_lead = "2d"
expiry_notify = []`)
	if errs != "" {
		t.Fatal(errs)
	}
	if got := p.Schedule.ExpiryLead.Before(created, created.Add(30*24*time.Hour)); got != 48*time.Hour || len(p.Schedule.ExpiryNotify) != 0 {
		t.Errorf("fixed lead %s, notify %v", got, p.Schedule.ExpiryNotify)
	}
	for attrs, want := range map[string]string{
		`expiry_lead = "100%"`:        "Invalid expiry_lead",
		`expiry_lead = "0%"`:          "Invalid expiry_lead",
		`expiry_lead = "soon"`:        "Invalid duration",
		`expiry_notify = ["1h", "x"]`: "Invalid expiry_notify",
		`key_ttl = "30s"`:             "Invalid key_ttl",
		`key_ttl = "7d"`:              "Unsupported key_ttl",
	} {
		_, errs := loadPolicy(t, attrs)
		if !strings.Contains(errs, want) || !strings.Contains(errs, "rekey.hcl:4:") {
			t.Errorf("%s: want %q at line 4, got:\n%s", attrs, want, errs)
		}
	}
}
