package metrics

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestAlertRules checks examples/alerts.yml: Prometheus' own checker
// (promtool check rules, from Debian's prometheus package) accepts it, and
// every metric its expressions name is one rekey exports. Rules in the
// group rekey-dependents watch the dependents' metrics instead.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}

	if promtool, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("REKEY_TEST_REQUIRE_SERVERS") == "1" {
			t.Fatal("promtool not found: apt-get install prometheus")
		}
		t.Log("promtool not found: PromQL syntax not checked")
	} else if out, err := exec.Command(promtool, "check", "rules", "../../examples/alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	exported := exportedNames(t)
	metricRef := regexp.MustCompile(`\brekey_[a-z_]+\b`)
	seen := map[string]bool{}
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v lacks alert or expr", r)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: missing summary or description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			refs := metricRef.FindAllString(r.Expr, -1)
			if len(refs) == 0 && g.Name != "rekey-dependents" {
				t.Errorf("%s: expression names no rekey metric: %q", r.Alert, r.Expr)
			}
			for _, ref := range refs {
				if !exported[ref] {
					t.Errorf("%s: %s is not a metric rekey exports", r.Alert, ref)
				}
			}
		}
	}
	for _, want := range []string{"RekeyRotationOverdue", "RekeyPolicyStuck", "RekeyKeyOlderThanMaxAge", "RekeyConfigReloadFailed", "RekeyNoSuccessfulRotation", "RekeyWatchFailed", "RekeyDependentAuthFailuresRising", "RekeyKeyExpiringSoon", "RekeyKeyExpired"} {
		if !seen[want] {
			t.Errorf("alert %s missing", want)
		}
	}
	t.Logf("%d rules checked", rules)
}

// exportedNames returns every series name a fully populated Metrics
// exports, histogram suffixes included.
func exportedNames(t *testing.T) map[string]bool {
	fams := parse(t, scrape(t, populated(t)))
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}
