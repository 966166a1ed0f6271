package notifiers

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func onAttr(t *testing.T, src string) *hcl.Attribute {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, _, diags := f.Body.PartialContent(CommonSchema)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return content.Attributes["on"]
}

func TestDecodeFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		want    []string
		wantErr string
	}{
		{"absent means the default", `url = "x"`, DefaultEvents, ""},
		{"listed events", `on = ["success", "stuck", "success"]`, []string{"success", "stuck"}, ""},
		{"every event", `on = ["failure","stuck","rolled_back","success","revoke_pending","reactivated","watch_failed","expiring","expired","compromised"]`, Events, ""},
		{"unknown event is refused", `on = ["failed"]`, nil, `unknown event "failed"`},
		{"empty list is refused", `on = []`, nil, "never be used"},
		{"not a list is refused", `on = { a = 1 }`, nil, "must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, diags := DecodeFilter(onAttr(t, tt.src), nil)
			if tt.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diags = %v, want %q", diags, tt.wantErr)
				}
				if diags[0].Subject == nil || diags[0].Subject.Start.Line != 1 {
					t.Errorf("diagnostic has no source range: %+v", diags[0])
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got, want := f.Events(), slices.Clone(tt.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("events = %v, want %v", f.Events(), tt.want)
			}
			for _, e := range Events {
				if f.Match(e) != slices.Contains(tt.want, e) {
					t.Errorf("Match(%q) = %v", e, f.Match(e))
				}
			}
		})
	}
}
