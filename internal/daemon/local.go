package daemon

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
)

// Local is an engine run inside a command (`rekey rotate`, `status`,
// `plan` when no daemon runs), over the same journal and audit log as
// the daemon, holding the journal's lock.
type Local struct {
	Engine  *rotator.Engine
	journal rotator.Journal
	audit   *audit.Log
	cfg     *policies.Config
}

// OpenLocal opens the journal and the audit log of cfg's state directory
// and an engine over them, with the same loss checks as the daemon. With
// readOnly, a state directory never used shows an empty in-memory journal
// (nothing is created) and no audit log is opened. With a shared journal
// (journal "etcd") it reads the journal in etcd and writes nothing: only
// the owner instance rotates, and a rotation asked here is refused with
// the owner's name.
func OpenLocal(cfg *policies.Config, log zerolog.Logger, readOnly bool) (*Local, error) {
	auditPath := filepath.Join(cfg.StateDir, AuditFile)
	l := &Local{cfg: cfg}
	if cfg.Journal != nil {
		h, err := openHA(cfg.Journal, log)
		if err != nil {
			return nil, err
		}
		l.journal = h.journal
	} else if readOnly && neverUsed(cfg.StateDir, auditPath) {
		l.journal = rotator.NewMemJournal()
	} else {
		j, err := rotator.OpenBoltJournal(cfg.StateDir, auditPath)
		if err != nil {
			return nil, err
		}
		l.journal = j
		if !readOnly {
			if l.audit, err = audit.Open(auditPath); err != nil {
				j.Close()
				return nil, err
			}
		}
	}
	e, err := rotator.New(engineOptions(l.journal, l.audit, log))
	if err != nil {
		l.closeFiles()
		return nil, err
	}
	e.SetPolicies(cfg.Policies)
	l.Engine = e
	return l, nil
}

// neverUsed reports a state directory with no journal, no marker and no
// audit records: status and plan show it empty without creating anything.
func neverUsed(stateDir, auditPath string) bool {
	for _, p := range []string{filepath.Join(stateDir, rotator.JournalFile), filepath.Join(stateDir, rotator.JournalMarker)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			return false
		}
	}
	fi, err := os.Stat(auditPath)
	return errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0
}

func (l *Local) closeFiles() {
	if l.audit != nil {
		l.audit.Close()
	}
	l.journal.Close()
}

// Close closes the audit log, the journal and the configuration's
// connections.
func (l *Local) Close() {
	l.closeFiles()
	l.cfg.Connections.Close()
}
