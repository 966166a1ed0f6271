// Package file implements the file sink: the key written to a local file
// (a raw value, JSON, env lines or a template), replaced atomically, with
// the previous content kept beside it so that a rotation can be rolled
// back, and with check-and-set against writers outside rekey.
//
// Beside the file F the sink keeps two files in the same directory:
// ".F.rekey-prev", a copy of the content before the last write (mode 0600,
// a secret like F itself), and ".F.rekey-state", non-secret JSON naming the
// rotation that wrote F, a version counter and the identity of the files
// rekey wrote (device, inode, size and modification time; never a hash of
// the content, which could be brute-forced for a low-entropy secret). A
// file whose identity rekey does not know was written by someone else.
package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/sinks"
)

func init() { sinks.Register("file", New) }

// Sink writes a key to one file.
type Sink struct {
	path, dir, name string
	format          string
	newline         bool
	tmpl            *template.Template
	mode            uint32
	owner, group    string
	uid, gid        int

	// failpoint, set by tests only, simulates a crash at a named point.
	failpoint func(name string) error
}

var _ sinks.Sink = (*Sink)(nil)

// identity tells files apart without reading them: a rename keeps it, a
// write by anyone changes it.
type identity struct {
	Dev     uint64 `json:"dev,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
}

func (a *identity) equal(b *identity) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// state is the sidecar's content. It never holds secret material.
type state struct {
	// RotationID is the rotation of the last write by rekey.
	RotationID string `json:"rotation_id"`
	// Version is what that write holds, File its identity.
	Version string    `json:"version"`
	File    *identity `json:"file,omitempty"`
	// PrevVersion is the version that was current before the write,
	// PrevFile its identity (nil: the file did not exist), and PrevMode,
	// PrevUID and PrevGID its permissions, restored by a rollback.
	PrevVersion string    `json:"prev_version"`
	PrevFile    *identity `json:"prev_file,omitempty"`
	PrevMode    uint32    `json:"prev_mode,omitempty"`
	PrevUID     int       `json:"prev_uid"`
	PrevGID     int       `json:"prev_gid"`
	// Counter is the last version number used; it never goes back.
	Counter   int64     `json:"counter"`
	WrittenAt time.Time `json:"written_at"`
	// RolledBackAt and RestoredFile are set by a rollback: the restored
	// file holds PrevVersion again.
	RolledBackAt *time.Time `json:"rolled_back_at,omitempty"`
	RestoredFile *identity  `json:"restored_file,omitempty"`
}

// Location implements sinks.Sink: "file:" and the absolute path.
func (s *Sink) Location() string { return "file:" + s.path }

func (s *Sink) statePath() string { return filepath.Join(s.dir, "."+s.name+".rekey-state") }
func (s *Sink) prevPath() string  { return filepath.Join(s.dir, "."+s.name+".rekey-prev") }

// Temporary files: one per file the sink replaces (the location itself,
// its prev copy, its state), each renamed over its file. Only one
// rotation writes a location at a time, so the names are fixed.
const (
	tempValue = "value"
	tempPrev  = "prev"
	tempState = "state"
)

func (s *Sink) tempPath(kind string) string {
	return filepath.Join(s.dir, "."+s.name+".rekey-"+kind+".tmp")
}

// Current implements sinks.Sink. It returns "" when the file does not
// exist, the counter rekey gave its last write ("1", "2", ...) when the
// file is unchanged since, and "external-" with a fingerprint of the
// file's identity when another writer made it.
func (s *Sink) Current(ctx context.Context) (sinks.Version, error) {
	v, _, _, err := s.current()
	return v, err
}

// current returns the version served, the file's identity and info (nil
// when absent), and the sidecar (nil when absent).
func (s *Sink) current() (sinks.Version, *identity, *state, error) {
	st, err := s.readState()
	if err != nil {
		return "", nil, nil, err
	}
	fi, err := os.Lstat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, st, nil
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("reading %s: %w", s.path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, nil, plugin.Permanent(fmt.Errorf("%s is not a regular file (a symbolic link, directory or device); point path at the real file", s.path))
	}
	id := identityOf(fi)
	return s.versionOf(id, st), id, st, nil
}

func (s *Sink) versionOf(id *identity, st *state) sinks.Version {
	if id == nil {
		return ""
	}
	if st != nil {
		switch {
		case st.File.equal(id):
			return sinks.Version(st.Version)
		case st.PrevFile.equal(id), st.RestoredFile.equal(id):
			return sinks.Version(st.PrevVersion)
		}
	}
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, id)
	return sinks.Version("external-" + hex.EncodeToString(h.Sum(nil)[:6]))
}

// Stage implements sinks.Sink: a file has no pending notion, so it does
// nothing.
func (s *Sink) Stage(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	return "", nil
}

// Promote implements sinks.Sink: check-and-set against st.Prev, keep the
// previous content in the prev copy, write the new content atomically, read
// it back.
func (s *Sink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	content, err := s.render(key)
	if err != nil {
		return "", err
	}
	defer clear(content)
	fields := key.Value.Reveal()

	cur, curID, side, err := s.current()
	if err != nil {
		return "", err
	}
	if side != nil && side.RotationID == rot.ID && side.RolledBackAt == nil && side.File.equal(curID) && curID != nil {
		if err := s.readBack(content, curID); err != nil {
			return "", err
		}
		return cur, nil
	}
	if cur != st.Prev {
		return "", fmt.Errorf("writing %s: %w: it holds version %q, not %q as when the rotation started; find out who else writes it, then rotate again", s.path, plugin.ErrConflict, cur, st.Prev)
	}
	if err := s.removeTemps(); err != nil {
		return "", err
	}

	uid, gid, err := s.accounts()
	if err != nil {
		return "", err
	}
	next := &state{
		RotationID:  rot.ID,
		PrevVersion: string(cur),
		PrevFile:    curID,
		PrevUID:     -1,
		PrevGID:     -1,
		WrittenAt:   time.Now().UTC(),
	}
	if side != nil {
		next.Counter = side.Counter
	}
	next.Counter++
	next.Version = strconv.FormatInt(next.Counter, 10)

	if curID != nil {
		fi, err := os.Lstat(s.path)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", s.path, err)
		}
		next.PrevMode = uint32(fi.Mode().Perm())
		next.PrevUID, next.PrevGID = ownerOf(fi)
		if uid < 0 && s.owner == "" {
			uid = next.PrevUID
		}
		if gid < 0 && s.group == "" {
			gid = next.PrevGID
		}
		if err := s.copyPrev(curID); err != nil {
			return "", err
		}
	}
	if err := s.fail("after-prev-copy"); err != nil {
		return "", err
	}

	tmp, newID, err := s.writeTemp(tempValue, content, s.mode, uid, gid)
	if err != nil {
		return "", scrub(err, fields)
	}
	next.File = newID
	if err := s.writeState(next); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := s.fail("before-rename"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("replacing %s: %w", s.path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", fmt.Errorf("syncing directory %s: %w", s.dir, err)
	}
	if err := s.fail("after-rename"); err != nil {
		return "", err
	}
	if err := s.readBack(content, newID); err != nil {
		return "", err
	}
	return sinks.Version(next.Version), nil
}

// Rollback implements sinks.Sink. It restores the content from before
// this rotation's write (or removes the file if there was none), when the
// sidecar shows that this rotation wrote the file and nobody changed it
// since.
func (s *Sink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	_, curID, side, err := s.current()
	if err != nil {
		return err
	}
	if side == nil || side.RotationID != rot.ID {
		return nil
	}
	if err := s.removeTemps(); err != nil {
		return err
	}
	switch {
	case side.File.equal(curID) && curID != nil:
	case side.PrevFile.equal(curID), side.RestoredFile.equal(curID) && curID != nil:
		return nil
	default:
		return fmt.Errorf("restoring %s: %w: it was changed after rotation %s wrote it; restore it by hand (the previous content is in %s)", s.path, plugin.ErrConflict, rot.ID, s.prevPath())
	}
	now := time.Now().UTC()
	next := *side
	next.RolledBackAt = &now

	if side.PrevFile == nil {
		if err := s.writeState(&next); err != nil {
			return err
		}
		if err := s.fail("before-remove"); err != nil {
			return err
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s, which did not exist before the rotation: %w", s.path, err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("syncing directory %s: %w", s.dir, err)
		}
		return nil
	}

	prev, err := os.ReadFile(s.prevPath())
	if err != nil {
		return fmt.Errorf("reading the previous content of %s from %s: %w", s.path, s.prevPath(), err)
	}
	defer clear(prev)
	if int64(len(prev)) != side.PrevFile.Size {
		return plugin.Permanent(fmt.Errorf("restoring %s: the copy of its previous content in %s has %d bytes, not %d; it was changed, restore %s by hand", s.path, s.prevPath(), len(prev), side.PrevFile.Size, s.path))
	}
	tmp, restoredID, err := s.writeTemp(tempValue, prev, side.PrevMode, side.PrevUID, side.PrevGID)
	if err != nil {
		return err
	}
	next.RestoredFile = restoredID
	if err := s.writeState(&next); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.fail("before-restore-rename"); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restoring %s: %w", s.path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("syncing directory %s: %w", s.dir, err)
	}
	return s.readBack(prev, restoredID)
}

// accounts resolves the owner and group options; -1 means not set.
func (s *Sink) accounts() (uid, gid int, err error) {
	uid, gid = -1, -1
	if s.owner != "" {
		if uid, err = lookupUser(s.owner); err != nil {
			return -1, -1, plugin.Permanent(fmt.Errorf("writing %s: %w", s.path, err))
		}
	}
	if s.group != "" {
		if gid, err = lookupGroup(s.group); err != nil {
			return -1, -1, plugin.Permanent(fmt.Errorf("writing %s: %w", s.path, err))
		}
	}
	return uid, gid, nil
}

// writeTemp writes content to the location's temporary file of kind,
// beside the target (removed first if a crash left it, then created anew
// and exclusively, so a link planted there is never followed), 0600,
// synced, then given its owner and mode. It returns the file's name and
// identity, which the rename keeps.
func (s *Sink) writeTemp(kind string, content []byte, mode uint32, uid, gid int) (string, *identity, error) {
	name := s.tempPath(kind)
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("removing %s: %w", name, err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("creating a temporary file beside %s: %w; check that the directory exists and rekey may write to it", s.path, err)
	}
	fail := func(what string, err error) (string, *identity, error) {
		f.Close()
		os.Remove(name)
		return "", nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if _, err := f.Write(content); err != nil {
		return fail("writing", err)
	}
	if err := f.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := chown(f, uid, gid); err != nil {
		return fail(fmt.Sprintf("giving owner %d and group %d to", uid, gid), fmt.Errorf("%w (rekey must run as root to hand files to other users; or remove owner and group)", err))
	}
	if err := f.Chmod(fs.FileMode(mode)); err != nil {
		return fail("setting the mode of", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("reading", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", nil, fmt.Errorf("closing %s: %w", name, err)
	}
	return name, identityOf(fi), nil
}

// copyPrev keeps the current content (with identity id) in the prev copy,
// atomically and with mode 0600.
func (s *Sink) copyPrev(id *identity) error {
	content, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("reading %s to keep its previous content: %w", s.path, err)
	}
	defer clear(content)
	fi, err := os.Lstat(s.path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.path, err)
	}
	if !identityOf(fi).equal(id) {
		return fmt.Errorf("writing %s: %w: it changed while rekey read it", s.path, plugin.ErrConflict)
	}
	tmp, _, err := s.writeTemp(tempPrev, content, 0o600, -1, -1)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, s.prevPath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keeping the previous content of %s: %w", s.path, err)
	}
	return syncDir(s.dir)
}

// readBack checks that the file holds exactly content, in constant time.
func (s *Sink) readBack(content []byte, id *identity) error {
	got, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("reading %s back: %w", s.path, err)
	}
	defer clear(got)
	fi, err := os.Lstat(s.path)
	if err != nil {
		return fmt.Errorf("reading %s back: %w", s.path, err)
	}
	if subtle.ConstantTimeCompare(got, content) != 1 || !identityOf(fi).equal(id) {
		return fmt.Errorf("reading %s back: %w: its content is not what rekey wrote", s.path, plugin.ErrConflict)
	}
	return nil
}

func (s *Sink) readState() (*state, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading rekey's state of %s: %w", s.path, err)
	}
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, plugin.Permanent(fmt.Errorf("reading rekey's state of %s: %s is damaged (%v); delete it and rekey will treat the file as written by someone else", s.path, s.statePath(), err))
	}
	return &st, nil
}

func (s *Sink) writeState(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, _, err := s.writeTemp(tempState, append(b, '\n'), 0o600, -1, -1)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, s.statePath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing rekey's state of %s: %w", s.path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("syncing directory %s: %w", s.dir, err)
	}
	return nil
}

// removeTemps removes the temporary file a crash may have left. Only one
// rotation writes a location at a time, so it is not in use. Temporary
// files of earlier versions (random names) are looked for once per
// directory and process: listing a directory before every write cost time
// in the square of the files sharing it.
func (s *Sink) removeTemps() error {
	if fi, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return plugin.Permanent(fmt.Errorf("writing %s: directory %s does not exist; create it (rekey does not create directories)", s.path, s.dir))
	}
	for _, kind := range []string{tempValue, tempPrev, tempState} {
		if err := os.Remove(s.tempPath(kind)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing a temporary file left by an earlier attempt: %w", err)
		}
	}
	if _, seen := legacyScanned.LoadOrStore(s.dir, true); seen {
		return nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		legacyScanned.Delete(s.dir)
		return fmt.Errorf("reading directory %s: %w", s.dir, err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".rekey-tmp-") {
			if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				legacyScanned.Delete(s.dir)
				return fmt.Errorf("removing a temporary file left by an earlier version: %w", err)
			}
		}
	}
	return nil
}

// legacyScanned holds the directories already searched for temporary
// files of earlier versions in this process.
var legacyScanned sync.Map

func (s *Sink) fail(point string) error {
	if s.failpoint == nil {
		return nil
	}
	if err := s.failpoint(point); err != nil {
		return fmt.Errorf("failpoint %s: %w", point, err)
	}
	return nil
}
