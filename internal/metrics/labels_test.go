package metrics

import (
	"strings"
	"testing"
)

// TestPolicyLabels: each policy's labels are exported on
// rekey_policy_labels as label_NAME (made valid Prometheus names), and a
// policy without labels has no series.
func TestPolicyLabels(t *testing.T) {
	out := string(scrape(t, populated(t)))
	if !strings.Contains(out, `rekey_policy_labels{label_cost_center="42",label_env="prod",policy="payments"} 1`) {
		t.Fatalf("no labels series for payments:\n%s", grepLines(out, "rekey_policy_labels"))
	}
	if strings.Contains(out, `rekey_policy_labels{policy="billing-db"`) {
		t.Fatal("a policy without labels has a labels series")
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
