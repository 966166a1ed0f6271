package rotator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	policiesBucket = []byte("policies")
	metaBucket     = []byte("meta")
	metaIDKey      = []byte("journal_id")
)

// JournalFile is the name of the embedded journal inside state_dir.
const JournalFile = "journal.db"

// JournalMarker is the file written beside the journal when it is first
// created. It holds the journal's id, so that a journal that is missing,
// empty or replaced is told apart from a first start.
const JournalMarker = "journal.marker"

// ErrJournalLost reports a state directory whose journal is missing,
// empty or not the one it started with: the record of rotations in flight
// and of old keys awaiting revocation is gone, which is never the same as
// a first start.
var ErrJournalLost = errors.New("the journal is lost")

// ErrJournalCorrupt reports a journal file that cannot be read.
var ErrJournalCorrupt = errors.New("the journal is corrupt")

// journalAdvice is what an operator does about a lost or corrupt journal.
const journalAdvice = "rekey refuses to start from scratch, which could orphan a new key or leave an old one unrevoked: " +
	"restore journal.db from a backup (stop the daemon first), or run `rekey journal recover` to rebuild it from the providers' key lists and the audit log"

// BoltJournal is the embedded journal: one bbolt file in the state
// directory, 0600 in a 0700 directory, held with an exclusive lock for as
// long as it is open.
type BoltJournal struct {
	db   *bolt.DB
	dir  string
	path string
	id   string

	mu   sync.Mutex
	file os.FileInfo
	// faulted is set once a read panicked or faulted: bbolt may then hold
	// internal locks for good, so Close does not wait for them.
	faulted atomic.Bool
	// writers counts the updates in flight (group commit).
	writers atomic.Int32
}

var _ Journal = (*BoltJournal)(nil)

type markerFile struct {
	JournalID string    `json:"journal_id"`
	Created   time.Time `json:"created"`
}

// OpenBoltJournal opens the journal in dir, creating it only at a first
// start. It fails with ErrLocked at once when another process holds it,
// with ErrJournalLost when the journal is missing or empty although the
// marker, or any of the evidence files (such as the audit log) that is not
// empty, shows that the directory was used before, or when the journal was
// replaced, and with ErrJournalCorrupt when the file cannot be read. It
// never panics on a corrupt file.
func OpenBoltJournal(dir string, evidence ...string) (*BoltJournal, error) {
	if err := ensurePrivateDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, JournalFile)
	marker, err := readMarker(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if marker != nil {
			return nil, fmt.Errorf("%w: %s is missing, but %s shows a journal was created here on %s; %s", ErrJournalLost, path,
				filepath.Join(dir, JournalMarker), marker.Created.Format(time.RFC3339), journalAdvice)
		}
		for _, ev := range evidence {
			if efi, err := os.Stat(ev); err == nil && efi.Size() > 0 {
				return nil, fmt.Errorf("%w: %s is missing, but %s shows rotations ran here before; %s", ErrJournalLost, path, ev, journalAdvice)
			}
		}
		if err := createJournal(dir); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("checking journal: %w", err)
	case fi.Size() == 0:
		return nil, fmt.Errorf("%w: %s is empty (zero length); %s", ErrJournalLost, path, journalAdvice)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("journal %s has mode %o, readable or writable by others: run chmod 0600 %s", path, fi.Mode().Perm(), path)
	}
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	j := &BoltJournal{db: db, dir: dir, path: path}
	if err := j.verify(marker); err != nil {
		db.Close()
		return nil, err
	}
	if j.file, err = os.Stat(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("checking journal: %w", err)
	}
	return j, nil
}

// createJournal makes a new journal under a temporary name, gives it an
// id, and links it in place, then writes the marker: a crash leaves
// either no journal or a complete one, and of two processes creating one
// at the same time, one wins and the other opens the winner's.
func createJournal(dir string) error {
	f, err := os.CreateTemp(dir, JournalFile+".new-*")
	if err != nil {
		return fmt.Errorf("creating journal: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := openBolt(tmp)
	if err != nil {
		return err
	}
	id := newJournalID()
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(policiesBucket); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(metaIDKey, []byte(id))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("creating journal: %w", err)
	}
	if err := os.Link(tmp, filepath.Join(dir, JournalFile)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("creating journal: %w", err)
	}
	return writeMarker(dir, id)
}

func newJournalID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func readMarker(dir string) (*markerFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, JournalMarker))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading journal marker: %w", err)
	}
	var m markerFile
	if err := json.Unmarshal(b, &m); err != nil || m.JournalID == "" {
		return &markerFile{}, nil
	}
	return &m, nil
}

func writeMarker(dir, id string) error {
	b, _ := json.Marshal(markerFile{JournalID: id, Created: time.Now().UTC()})
	f, err := os.CreateTemp(dir, JournalMarker+".new-*")
	if err != nil {
		return fmt.Errorf("writing journal marker: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, JournalMarker))
	}
	if err != nil {
		return fmt.Errorf("writing journal marker: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// openBolt opens a bbolt file, turning a panic or fault on a corrupt file
// into ErrJournalCorrupt.
func openBolt(path string) (db *bolt.DB, err error) {
	err = guard(path, func() error {
		var oerr error
		db, oerr = bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
		return oerr
	})
	if err == nil {
		return db, nil
	}
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("opening journal %s: %w (is the daemon running? use it, or stop it first; or a rekey rotate run without a daemon holds it until it returns)", path, ErrLocked)
	case errors.Is(err, ErrJournalCorrupt):
		return nil, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: opening %s: %v; %s", ErrJournalCorrupt, path, err, journalAdvice)
	}
	return nil, fmt.Errorf("opening journal %s: %w", path, err)
}

// guard runs fn, converting a panic or a memory fault (bbolt reads pages
// through mmap and panics on some corrupt pages) into ErrJournalCorrupt.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s is damaged: %s; %s", ErrJournalCorrupt, path, damage(r), journalAdvice)
		}
	}()
	return fn()
}

// damage describes a panic recovered while reading a journal in the
// journal's terms: a Go runtime error (a bounds check, a memory fault)
// means a page points outside the file; bbolt's own panics are kept, cut
// short.
func damage(r any) string {
	if _, ok := r.(runtime.Error); ok {
		return "a page points outside the file or holds invalid sizes"
	}
	s := strings.TrimSpace(fmt.Sprint(r))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return "a page is invalid (" + s + ")"
}

// verify reads every record once (so that a corrupt page is found now,
// not in the middle of a rotation), checks the journal against the
// marker, and gives a journal from before markers its id.
func (j *BoltJournal) verify(marker *markerFile) error {
	var id string
	var hasPolicies bool
	err := guard(j.path, func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(metaBucket); m != nil {
				id = string(m.Get(metaIDKey))
			}
			b := tx.Bucket(policiesBucket)
			if b == nil {
				return nil
			}
			hasPolicies = true
			return b.ForEach(func(k, v []byte) error {
				var st PolicyState
				if err := json.Unmarshal(v, &st); err != nil {
					return fmt.Errorf("%w: the entry of %q in %s does not decode (%v); %s", ErrJournalCorrupt, k, j.path, err, journalAdvice)
				}
				return nil
			})
		})
	})
	if err != nil {
		return err
	}
	if err := guard(j.path, func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return fmt.Errorf("%w: %s fails its consistency check (%v); %s", ErrJournalCorrupt, j.path, err, journalAdvice)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	switch {
	case !hasPolicies:
		return fmt.Errorf("%w: %s holds no rekey journal (no policies bucket); %s", ErrJournalLost, j.path, journalAdvice)
	case marker != nil && marker.JournalID == "":
		return fmt.Errorf("%w: the marker %s is unreadable, so rekey cannot tell whether %s is the journal this directory started with; %s",
			ErrJournalLost, filepath.Join(j.dir, JournalMarker), j.path, journalAdvice)
	case marker != nil && id != marker.JournalID:
		return fmt.Errorf("%w: %s was replaced: its id %q is not the id %q recorded in %s at the first start; %s",
			ErrJournalLost, j.path, id, marker.JournalID, filepath.Join(j.dir, JournalMarker), journalAdvice)
	case id == "":
		id = newJournalID()
		if err := j.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			return b.Put(metaIDKey, []byte(id))
		}); err != nil {
			return fmt.Errorf("giving the journal an id: %w", err)
		}
		fallthrough
	case marker == nil:
		if err := writeMarker(j.dir, id); err != nil {
			return err
		}
	}
	j.id = id
	return nil
}

// guard is the package guard that also remembers a fault.
func (j *BoltJournal) guard(fn func() error) error {
	err := guard(j.path, fn)
	if errors.Is(err, ErrJournalCorrupt) {
		j.faulted.Store(true)
	}
	return err
}

// ID returns the journal's id (also recorded in the marker file).
func (j *BoltJournal) ID() string { return j.id }

// Path returns the journal file's path.
func (j *BoltJournal) Path() string { return j.path }

// Check reports ErrJournalLost when the journal file this process opened
// is no longer at its path: deleted, replaced (another inode), truncated,
// or its marker removed. The daemon calls it periodically; Update calls
// it before every write, so that no step is journaled into a file that a
// restart would not see.
func (j *BoltJournal) Check() error {
	fi, err := os.Stat(j.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s was deleted while rekey was running; %s", ErrJournalLost, j.path, journalAdvice)
	case err != nil:
		return fmt.Errorf("checking journal: %w", err)
	}
	j.mu.Lock()
	same := os.SameFile(j.file, fi)
	j.mu.Unlock()
	if !same {
		return fmt.Errorf("%w: %s was replaced by another file while rekey was running; %s", ErrJournalLost, j.path, journalAdvice)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%w: %s was truncated to zero length while rekey was running; %s", ErrJournalLost, j.path, journalAdvice)
	}
	if _, err := os.Stat(filepath.Join(j.dir, JournalMarker)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: the marker %s was deleted while rekey was running; %s", ErrJournalLost, filepath.Join(j.dir, JournalMarker), journalAdvice)
	}
	return nil
}

// Rescue writes a consistent copy of the open journal to path (0600), for
// an operator to restore after the file was deleted or replaced under a
// running daemon.
func (j *BoltJournal) Rescue(path string) error {
	if fi, err := os.Stat(j.path); err == nil && fi.Size() == 0 && os.SameFile(fi, j.file) {
		return fmt.Errorf("cannot rescue %s: the file itself was truncated, its records are gone", j.path)
	}
	return j.guard(func() error {
		return j.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
	})
}

func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking state directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("state directory %s has mode %o: run chmod 0700 %s: %w", dir, fi.Mode().Perm(), dir, err)
		}
	}
	return nil
}

// Get implements Journal.
func (j *BoltJournal) Get(_ context.Context, policy string) (PolicyState, bool, error) {
	var st PolicyState
	var ok bool
	err := j.guard(func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(policiesBucket).Get([]byte(policy))
			if v == nil {
				return nil
			}
			ok = true
			return json.Unmarshal(v, &st)
		})
	})
	if err != nil {
		return PolicyState{}, false, fmt.Errorf("reading journal for %s: %w", policy, err)
	}
	return st, ok, nil
}

// Update implements Journal. It refuses to write when the journal file
// was deleted or replaced (see Check).
func (j *BoltJournal) Update(_ context.Context, policy string, fn func(*PolicyState) error) (PolicyState, error) {
	if err := j.Check(); err != nil {
		return PolicyState{}, fmt.Errorf("updating journal for %s: %w", policy, err)
	}
	var out PolicyState
	// Alone, an update commits at once; while others are in flight (the
	// scheduler's or rotate -all's concurrent rotations), it joins them in
	// one bbolt Batch: one commit, one pair of fdatasync, for all. Batch
	// may run fn again, alone, when another function of the batch fails:
	// it decodes the stored state afresh each time.
	commit := j.db.Update
	if j.writers.Add(1) > 1 {
		commit = j.db.Batch
	}
	defer j.writers.Add(-1)
	err := j.guard(func() error {
		return commit(func(tx *bolt.Tx) error {
			b := tx.Bucket(policiesBucket)
			st := PolicyState{Policy: policy}
			if v := b.Get([]byte(policy)); v != nil {
				if err := json.Unmarshal(v, &st); err != nil {
					return fmt.Errorf("decoding journal entry: %w", err)
				}
			}
			if err := fn(&st); err != nil {
				return err
			}
			v, err := json.Marshal(st)
			if err != nil {
				return err
			}
			out = st
			return b.Put([]byte(policy), v)
		})
	})
	if err != nil {
		return PolicyState{}, fmt.Errorf("updating journal for %s: %w", policy, err)
	}
	return out, nil
}

// List implements Journal.
func (j *BoltJournal) List(_ context.Context) ([]PolicyState, error) {
	return j.list(func(v []byte) (PolicyState, error) {
		var st PolicyState
		err := json.Unmarshal(v, &st)
		return st, err
	})
}

// list decodes every entry of the journal with decode.
func (j *BoltJournal) list(decode func([]byte) (PolicyState, error)) ([]PolicyState, error) {
	var out []PolicyState
	err := j.guard(func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(policiesBucket).ForEach(func(_, v []byte) error {
				st, err := decode(v)
				if err != nil {
					return err
				}
				out = append(out, st)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing journal: %w", err)
	}
	return out, nil
}

// Close implements Journal. After a read faulted on a corrupt or
// truncated file, it returns an error instead of waiting for bbolt's
// locks; the file lock is released when the process exits.
func (j *BoltJournal) Close() error {
	if j.faulted.Load() {
		return fmt.Errorf("closing journal %s: %w: not closed cleanly after a failed read", j.path, ErrJournalCorrupt)
	}
	return j.db.Close()
}

// ReplaceBoltJournal moves the journal in dir and its marker aside (to
// names ending in .lost-TIME, kept for inspection), creates a new journal
// holding states, and opens it. It is the last step of `rekey journal
// recover`; the caller makes sure that no daemon runs on dir.
func ReplaceBoltJournal(dir string, states []PolicyState) (*BoltJournal, error) {
	if err := ensurePrivateDir(dir); err != nil {
		return nil, err
	}
	suffix := ".lost-" + time.Now().UTC().Format("20060102T150405Z")
	for _, name := range []string{JournalFile, JournalMarker} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			if err := os.Rename(p, p+suffix); err != nil {
				return nil, fmt.Errorf("moving the old journal aside: %w", err)
			}
		}
	}
	if err := createJournal(dir); err != nil {
		return nil, err
	}
	j, err := OpenBoltJournal(dir)
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if _, err := j.Update(context.Background(), st.Policy, func(s *PolicyState) error { *s = st; return nil }); err != nil {
			j.Close()
			return nil, err
		}
	}
	return j, nil
}
