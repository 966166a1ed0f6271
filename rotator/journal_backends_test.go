package rotator_test

import (
	"testing"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/journaltest"
)

// The same suite (rotator/journaltest) runs against every journal back
// end; rotator/etcdjournal runs it against etcd.
func TestJournalBackends(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		journaltest.Run(t, func(t *testing.T) rotator.Journal {
			j, err := rotator.OpenBoltJournal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { j.Close() })
			return j
		})
	})
	t.Run("memory", func(t *testing.T) {
		journaltest.Run(t, func(t *testing.T) rotator.Journal { return rotator.NewMemJournal() })
	})
}
