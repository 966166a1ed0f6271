package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var policiesBucket = []byte("policies")

// JournalFile is the name of the embedded journal inside state_dir.
const JournalFile = "journal.db"

// BoltJournal is the embedded journal: one bbolt file in the state
// directory, 0600 in a 0700 directory, held with an exclusive lock for as
// long as it is open.
type BoltJournal struct {
	db *bolt.DB
}

var _ Journal = (*BoltJournal)(nil)

// OpenBoltJournal opens (creating if needed) the journal in dir. It fails
// with ErrLocked at once when another process holds it.
func OpenBoltJournal(dir string) (*BoltJournal, error) {
	if err := ensurePrivateDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, JournalFile)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("journal %s has mode %o, readable or writable by others: run chmod 0600 %s", path, fi.Mode().Perm(), path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening journal %s: %w (is the daemon running? use it, or stop it first)", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening journal %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(policiesBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising journal: %w", err)
	}
	return &BoltJournal{db: db}, nil
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
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(policiesBucket).Get([]byte(policy))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &st)
	})
	if err != nil {
		return PolicyState{}, false, fmt.Errorf("reading journal for %s: %w", policy, err)
	}
	return st, ok, nil
}

// Update implements Journal.
func (j *BoltJournal) Update(_ context.Context, policy string, fn func(*PolicyState) error) (PolicyState, error) {
	var out PolicyState
	err := j.db.Update(func(tx *bolt.Tx) error {
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
	if err != nil {
		return PolicyState{}, fmt.Errorf("updating journal for %s: %w", policy, err)
	}
	return out, nil
}

// List implements Journal.
func (j *BoltJournal) List(_ context.Context) ([]PolicyState, error) {
	var out []PolicyState
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(policiesBucket).ForEach(func(_, v []byte) error {
			var st PolicyState
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing journal: %w", err)
	}
	return out, nil
}

// Close implements Journal.
func (j *BoltJournal) Close() error { return j.db.Close() }
