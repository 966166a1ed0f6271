package policies

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestJournalEtcdSettings(t *testing.T) {
	src := `
journal "etcd" {
  endpoints = ["http://127.0.0.1:2379", "https://etcd-2:2379"]
  prefix    = "/rekey/prod/"
  ca_file   = "tls/ca.pem"
  cert_file = "/etc/rekey/client.pem"
  key_file  = "/etc/rekey/client-key.pem"
  lease_ttl = "15s"
  instance  = "rekey-a"
}
`
	cfg, diags := NewLoader().LoadSources(map[string][]byte{"/etc/rekey/ha.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	j := cfg.Journal
	if j == nil || j.Kind != "etcd" || len(j.Endpoints) != 2 || j.Prefix != "/rekey/prod/" || j.CAFile != "/etc/rekey/tls/ca.pem" ||
		j.CertFile != "/etc/rekey/client.pem" || j.LeaseTTL != 15*time.Second || j.Instance != "rekey-a" {
		t.Fatalf("journal settings = %+v", j)
	}
	cfg, diags = NewLoader().LoadSources(map[string][]byte{"a.hcl": []byte(`journal "etcd" { endpoints = ["http://e:2379"] }`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Journal.Prefix != DefaultEtcdPrefix || cfg.Journal.LeaseTTL != DefaultEtcdLeaseTTL {
		t.Fatalf("defaults = %+v", cfg.Journal)
	}
	cfg, _ = NewLoader().LoadSources(map[string][]byte{"a.hcl": []byte(`state_dir = "/tmp/x"`)})
	if cfg.Journal != nil {
		t.Fatal("without a journal block the journal must stay the embedded one")
	}
}

func TestJournalEtcdMistakesNamePosition(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`journal "etc" { endpoints = ["http://e:2379"] }`, `a.hcl:1,9: Unknown journal kind; The journal kind "etc" is not known. Did you mean "etcd"?`},
		{`journal "etcd" { }`, `a.hcl:1,16: Missing required argument`},
		{`journal "etcd" { endpoints = [] }`, `a.hcl:1,30: Invalid endpoints`},
		{`journal "etcd" { endpoints = ["etcd:2379"] }`, `a.hcl:1,30: Invalid endpoint`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  prefix = "/rekey"
}`, `a.hcl:3,12: Invalid prefix`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  lease_ttl = "500ms"
}`, `a.hcl:3,15: Invalid lease_ttl; lease_ttl "500ms" must be whole seconds between 2s and 5m`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  lease_ttl = "ten"
}`, `a.hcl:3,15: Invalid lease_ttl`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  cert_file = "/c.pem"
}`, `a.hcl:1,1: Incomplete client certificate`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  instance = "a b"
}`, `a.hcl:3,14: Invalid instance`},
		{`journal "etcd" {
  endpoints = ["http://e:2379"]
  endpoint = "x"
}`, `a.hcl:3,3: Unsupported argument`},
		{`journal "etcd" { endpoints = ["http://e:2379"] }
journal "etcd" { endpoints = ["http://e:2379"] }`, `a.hcl:2,1: Duplicate journal block; Only one journal block is allowed in the whole configuration. Previous definition was at a.hcl:1:1.`},
	} {
		_, diags := NewLoader().LoadSources(map[string][]byte{"a.hcl": []byte(c.src)})
		var got []string
		for _, d := range diags {
			if d.Subject != nil {
				got = append(got, fmt.Sprintf("%s:%d,%d: %s; %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary, d.Detail))
			}
		}
		if !diags.HasErrors() || !strings.Contains(strings.Join(got, "\n"), c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.src, got, c.want)
		}
	}
}
