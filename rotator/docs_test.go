package rotator

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDocsListTheProtocolSteps keeps docs/protocol.md true: its steps table
// lists the steps of the protocol table, in order.
func TestDocsListTheProtocolSteps(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	var got []Step
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(rest, "` |"); ok {
				got = append(got, Step(name))
			}
		}
	}
	if want := ProtocolSteps(); !slices.Equal(got, want) {
		t.Fatalf("docs/protocol.md lists the steps %v; the protocol table has %v", got, want)
	}
}
