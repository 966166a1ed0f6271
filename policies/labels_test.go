package policies

import (
	"maps"
	"testing"
)

func TestLabelsAndGuards(t *testing.T) {
	t.Parallel()
	src := `
guard {
  label = "env"
}
testconn "prod" {
  address = "https://db.prod.internal"
  labels  = { env = "prod" }
}
policy "payments" {
  every  = "30d"
  labels = { env = "prod", team = "payments" }
  provider "test" {
    name       = "svc-payments"
    connection = testconn.prod
  }
  sink "test" {
    path = "/srv/payments"
  }
  probe "test" {}
}
`
	l := &Loader{LookupEnv: testEnv}
	cfg, diags := l.LoadSources(map[string][]byte{"labels.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	defer func() { _ = cfg.Connections.Close() }()
	if want := (Labels{"env": "prod", "team": "payments"}); !maps.Equal(cfg.Policies[0].Labels, want) {
		t.Errorf("policy labels %v", cfg.Policies[0].Labels)
	}
	if !maps.Equal(cfg.ConnectionLabels["testconn.prod"], Labels{"env": "prod"}) || len(cfg.Guards) != 1 || cfg.Guards[0] != "env" {
		t.Errorf("connection labels %v, guards %v", cfg.ConnectionLabels, cfg.Guards)
	}
}

func TestSelector(t *testing.T) {
	t.Parallel()
	sel, err := ParseSelector("env=prod, team=payments")
	if err != nil {
		t.Fatal(err)
	}
	for labels, want := range map[*Labels]bool{
		{"env": "prod", "team": "payments", "x": "y"}: true,
		{"env": "prod"}:                        false,
		{"env": "staging", "team": "payments"}: false,
	} {
		if got := sel.Matches(*labels); got != want {
			t.Errorf("%v matches %v: %v", sel, *labels, got)
		}
	}
	for _, bad := range []string{"", "env", "env=", "=prod", "env=prod/eu", "env=a,env=b"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
}
