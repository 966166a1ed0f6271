// Package vaultkv implements the vault_kv sink: it writes a policy's key to
// a path of a HashiCorp Vault KV version 2 secrets engine, as a new version
// written with check-and-set, and restores the previous data as a further
// new version on rollback. History is never destroyed.
//
// The rotation that wrote a version is recorded in the path's custom
// metadata (rekey_rotation_id, rekey_version, ...), written before the data,
// so that a rotation resumed after a crash recognises its own write.
package vaultkv

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Kind is the sink's block label.
const Kind = "vault_kv"

func init() { sinks.Register(Kind, New) }

// Custom metadata keys that rekey writes on the path. The prefix rekey_ is
// reserved: custom_metadata in the sink block may not use it.
const (
	MetaPolicy          = "rekey_policy"
	MetaGeneration      = "rekey_generation"
	MetaRotationID      = "rekey_rotation_id"
	MetaKeyID           = "rekey_key_id"
	MetaRotatedAt       = "rekey_rotated_at"
	MetaVersion         = "rekey_version"
	MetaRollbackVersion = "rekey_rollback_version"
	MetaRolledBackAt    = "rekey_rolled_back_at"
)

var rekeyMetaKeys = []string{MetaPolicy, MetaGeneration, MetaRotationID, MetaKeyID, MetaRotatedAt, MetaVersion, MetaRollbackVersion, MetaRolledBackAt}

type config struct {
	Connection          hcl.Expression    `hcl:"connection"`
	Mount               string            `hcl:"mount"`
	MountRange          hcl.Range         `hcl:"mount,attr_range"`
	Path                string            `hcl:"path"`
	PathRange           hcl.Range         `hcl:"path,attr_range"`
	CustomMetadata      map[string]string `hcl:"custom_metadata,optional"`
	CustomMetadataRange hcl.Range         `hcl:"custom_metadata,attr_range"`
}

// Sink writes keys to one KV v2 path.
type Sink struct {
	conn  *vault.Conn
	mount string
	path  string
	extra map[string]string

	mu      sync.Mutex
	checked bool
	// read is the metadata Current read last, for the Promote that
	// follows it (taken once): the write's check-and-set still guards
	// against a version written in between.
	read *meta
}

var _ sinks.Sink = (*Sink)(nil)

// New is the factory registered for sink "vault_kv".
func New(env *plugin.Env, body hcl.Body) (sinks.Sink, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	c, cdiags := env.Connection(cfg.Connection, vault.Kind)
	diags = append(diags, cdiags...)
	s := &Sink{
		mount: strings.Trim(cfg.Mount, "/"),
		path:  strings.Trim(cfg.Path, "/"),
		extra: cfg.CustomMetadata,
	}
	if c != nil {
		conn, ok := c.(*vault.Conn)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid connection", Detail: "connection must name a vault connection.", Subject: cfg.Connection.Range().Ptr()})
		}
		s.conn = conn
	}
	if s.mount == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty mount", Detail: "mount is the path of the KV v2 secrets engine, such as \"secret\".", Subject: cfg.MountRange.Ptr()})
	}
	if d := checkPath("path", s.path, cfg.PathRange); d != nil {
		diags = append(diags, d)
	}
	if d := checkPath("mount", s.mount, cfg.MountRange); d != nil && s.mount != "" {
		diags = append(diags, d)
	}
	if len(cfg.CustomMetadata) > 64-len(rekeyMetaKeys) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too much custom metadata", Detail: fmt.Sprintf("Vault allows 64 custom metadata keys and rekey uses %d; keep custom_metadata to %d keys.", len(rekeyMetaKeys), 64-len(rekeyMetaKeys)), Subject: cfg.CustomMetadataRange.Ptr()})
	}
	for k, v := range cfg.CustomMetadata {
		switch {
		case strings.HasPrefix(k, "rekey_"):
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reserved custom metadata key", Detail: fmt.Sprintf("The key %q uses the prefix rekey_, which rekey reserves for its own bookkeeping; rename it.", k), Subject: cfg.CustomMetadataRange.Ptr()})
		case len(k) == 0 || len(k) > 128 || len(v) == 0 || len(v) > 512:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid custom metadata", Detail: fmt.Sprintf("Vault requires custom metadata keys of 1 to 128 bytes and values of 1 to 512 bytes; %q does not fit.", k), Subject: cfg.CustomMetadataRange.Ptr()})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

func checkPath(attr, p string, r hcl.Range) *hcl.Diagnostic {
	if p == "" {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty " + attr, Detail: attr + " is the secret's path inside the mount, such as \"payments/aws\".", Subject: r.Ptr()}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + attr, Detail: fmt.Sprintf("%s %q has an empty, \".\" or \"..\" segment.", attr, p), Subject: r.Ptr()}
		}
	}
	return nil
}

// Location names the path written: vault_kv:CONNECTION:MOUNT/PATH.
func (s *Sink) Location() string {
	return Kind + ":" + s.conn.Name() + ":" + s.mount + "/" + s.path
}

func (s *Sink) dataPath() string     { return s.mount + "/data/" + s.path }
func (s *Sink) metadataPath() string { return s.mount + "/metadata/" + s.path }

// checkMount refuses anything but a KV version 2 mount, once per sink.
func (s *Sink) checkMount(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checked {
		return nil
	}
	var sec *api.Secret
	err := s.conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+s.mount)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: looking up mount %q (the token needs read access to it): %w", s.Location(), s.mount, err)
	}
	if sec == nil || sec.Data == nil {
		return plugin.Permanent(fmt.Errorf("%s: mount %q not found: enable it with vault secrets enable -path=%s kv-v2", s.Location(), s.mount, s.mount))
	}
	typ, _ := sec.Data["type"].(string)
	mpath, _ := sec.Data["path"].(string)
	var version string
	if opts, ok := sec.Data["options"].(map[string]any); ok {
		version, _ = opts["version"].(string)
	}
	switch {
	case typ != "kv" && typ != "generic":
		return plugin.Permanent(fmt.Errorf("%s: mount %q is a %q secrets engine, not KV version 2", s.Location(), s.mount, typ))
	case strings.Trim(mpath, "/") != s.mount:
		return plugin.Permanent(fmt.Errorf("%s: %q is not a mount point: the KV mount is %q; set mount = %q and put the rest in path", s.Location(), s.mount, strings.Trim(mpath, "/"), strings.Trim(mpath, "/")))
	case version != "2":
		return plugin.Permanent(fmt.Errorf("%s: mount %q is KV version 1, where check-and-set is silently ignored; rekey requires KV v2: vault kv enable-versioning %s", s.Location(), s.mount, s.mount))
	}
	s.checked = true
	return nil
}

// meta is the part of a path's KV v2 metadata the sink uses.
type meta struct {
	current  int
	custom   map[string]string
	versions map[int]versionMeta
}

type versionMeta struct {
	deleted   bool
	destroyed bool
}

func (m *meta) ours(rotID string) bool {
	return m != nil && rotID != "" && m.custom[MetaRotationID] == rotID
}

func (s *Sink) readMeta(ctx context.Context) (*meta, error) {
	var sec *api.Secret
	err := s.conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().ReadWithContext(ctx, s.metadataPath())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading metadata: %w", s.Location(), err)
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	m := &meta{custom: map[string]string{}, versions: map[int]versionMeta{}}
	m.current, _ = toInt(sec.Data["current_version"])
	if cm, ok := sec.Data["custom_metadata"].(map[string]any); ok {
		for k, v := range cm {
			if sv, ok := v.(string); ok {
				m.custom[k] = sv
			}
		}
	}
	if vs, ok := sec.Data["versions"].(map[string]any); ok {
		for k, v := range vs {
			n, err := strconv.Atoi(k)
			if err != nil {
				continue
			}
			vm, _ := v.(map[string]any)
			dt, _ := vm["deletion_time"].(string)
			ds, _ := vm["destroyed"].(bool)
			m.versions[n] = versionMeta{deleted: dt != "", destroyed: ds}
		}
	}
	return m, nil
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(n.String())
		return i, err == nil
	case float64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}

func version(n int) sinks.Version {
	if n <= 0 {
		return ""
	}
	return sinks.Version(strconv.Itoa(n))
}

func parseVersion(v sinks.Version) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n <= 0 {
		return 0, plugin.Permanent(fmt.Errorf("version %q is not a KV v2 version number", string(v)))
	}
	return n, nil
}

// Current returns the path's current version number, or "" when the path
// does not exist. A current version that was deleted or destroyed still
// counts by its number.
func (s *Sink) Current(ctx context.Context) (sinks.Version, error) {
	if err := s.checkMount(ctx); err != nil {
		return "", err
	}
	m, err := s.readMeta(ctx)
	if err != nil || m == nil {
		return "", err
	}
	s.mu.Lock()
	s.read = m
	s.mu.Unlock()
	return version(m.current), nil
}

// Stage does nothing: KV v2 has no notion of a pending version.
func (s *Sink) Stage(context.Context, plugin.Rotation, plugin.Key, sinks.State) (sinks.Version, error) {
	return "", nil
}

// readData reads one version's data. It returns nil data, and deleted =
// true, for a deleted or destroyed version.
func (s *Sink) readData(ctx context.Context, v int) (data map[string]any, deleted bool, err error) {
	var sec *api.Secret
	err = s.conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().ReadWithDataWithContext(ctx, s.dataPath(), map[string][]string{"version": {strconv.Itoa(v)}})
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading version %d: %w", s.Location(), v, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, false, plugin.Permanent(fmt.Errorf("%s: version %d does not exist (purged by max_versions?)", s.Location(), v))
	}
	d, _ := sec.Data["data"].(map[string]any)
	if d == nil {
		return nil, true, nil
	}
	return d, false, nil
}

func matches(data map[string]any, want secret.Fields) bool {
	got := make(secret.Fields, len(data))
	for k, v := range data {
		sv, ok := v.(string)
		if !ok {
			return false
		}
		got[k] = secret.New(sv)
	}
	a, b := got.Digest(), want.Digest()
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// patchMeta merges custom metadata keys (nil values delete them) into the
// path's metadata, creating the metadata when the path has none.
func (s *Sink) patchMeta(ctx context.Context, custom map[string]any) error {
	err := s.conn.Do(ctx, func(c *api.Client) error {
		_, err := c.Logical().JSONMergePatch(ctx, s.metadataPath(), map[string]any{"custom_metadata": custom})
		if vault.IsStatus(err, http.StatusNotFound) {
			set := map[string]any{}
			for k, v := range custom {
				if v != nil {
					set[k] = v
				}
			}
			_, err = c.Logical().WriteWithContext(ctx, s.metadataPath(), map[string]any{"custom_metadata": set})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: writing custom metadata (the token needs create, update and patch on %s): %w", s.Location(), s.metadataPath(), err)
	}
	return nil
}

// write writes data as a new version with check-and-set against cas and
// returns the version written. A failed check-and-set is plugin.ErrConflict.
func (s *Sink) write(ctx context.Context, data map[string]any, cas int) (int, error) {
	var sec *api.Secret
	err := s.conn.Do(ctx, func(c *api.Client) error {
		var err error
		sec, err = c.Logical().WriteWithContext(ctx, s.dataPath(), map[string]any{
			"options": map[string]any{"cas": cas},
			"data":    data,
		})
		return err
	})
	if err != nil {
		if re, ok := vault.AsResponseError(err); ok && re.StatusCode == http.StatusBadRequest && re.HasMessage("check-and-set") {
			return 0, fmt.Errorf("%s: the current version is no longer %d: %w", s.Location(), cas, plugin.ErrConflict)
		}
		return 0, fmt.Errorf("%s: writing a new version: %w", s.Location(), err)
	}
	n := 0
	if sec != nil {
		n, _ = toInt(sec.Data["version"])
	}
	if n != cas+1 {
		return 0, plugin.Permanent(fmt.Errorf("%s: vault reported version %d after a check-and-set write on version %d", s.Location(), n, cas))
	}
	return n, nil
}

// Promote writes key as a new version with check-and-set against st.Prev,
// reads it back and returns its number. The rotation's custom metadata is
// written first, naming the version about to be written.
func (s *Sink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	if err := s.checkMount(ctx); err != nil {
		return "", err
	}
	prev, err := parseVersion(st.Prev)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.Location(), err)
	}
	if len(key.Value) == 0 {
		return "", plugin.Permanent(fmt.Errorf("%s: the key has no value to write", s.Location()))
	}
	s.mu.Lock()
	m := s.read
	s.read = nil
	s.mu.Unlock()
	if m == nil || m.current != prev {
		if m, err = s.readMeta(ctx); err != nil {
			return "", err
		}
	}
	cur := 0
	if m != nil {
		cur = m.current
	}
	if cur != prev {
		if m.ours(rot.ID) && m.custom[MetaVersion] == strconv.Itoa(cur) && m.custom[MetaRollbackVersion] == "" {
			data, deleted, err := s.readData(ctx, cur)
			if err != nil {
				return "", err
			}
			if !deleted && matches(data, key.Value) {
				zerolog.Ctx(ctx).Debug().Str("location", s.Location()).Int("version", cur).Msg("vault_kv: version already written by this rotation")
				return version(cur), nil
			}
		}
		return "", fmt.Errorf("%s: current version is %d, expected %d: %w", s.Location(), cur, prev, plugin.ErrConflict)
	}

	claim := map[string]any{
		MetaPolicy:          nonEmpty(rot.Policy),
		MetaGeneration:      strconv.FormatInt(rot.Generation, 10),
		MetaRotationID:      nonEmpty(rot.ID),
		MetaKeyID:           nonEmpty(secret.Mask(key.ID)),
		MetaRotatedAt:       time.Now().UTC().Format(time.RFC3339),
		MetaVersion:         strconv.Itoa(prev + 1),
		MetaRollbackVersion: nil,
		MetaRolledBackAt:    nil,
	}
	for k, v := range s.extra {
		claim[k] = v
	}
	if err := s.patchMeta(ctx, claim); err != nil {
		return "", err
	}
	n, err := s.write(ctx, toAny(key.Value.Reveal()), prev)
	if err != nil {
		if errors.Is(err, plugin.ErrConflict) {
			s.unclaim(ctx, m, claim)
		}
		return "", err
	}
	data, deleted, err := s.readData(ctx, n)
	if err != nil {
		return "", fmt.Errorf("reading back: %w", err)
	}
	if deleted || !matches(data, key.Value) {
		return "", plugin.Permanent(fmt.Errorf("%s: version %d read back differs from what was written", s.Location(), n))
	}
	zerolog.Ctx(ctx).Info().Str("location", s.Location()).Int("version", n).Int("previous", prev).Msg("vault_kv: promoted")
	return version(n), nil
}

// unclaim puts back the rekey_ custom metadata that a claim replaced, after
// a check-and-set conflict, so that the other writer's version is not taken
// for this rotation's.
func (s *Sink) unclaim(ctx context.Context, before *meta, claim map[string]any) {
	restore := map[string]any{}
	for k := range claim {
		if !strings.HasPrefix(k, "rekey_") {
			continue
		}
		var v any
		if before != nil {
			if old, ok := before.custom[k]; ok {
				v = old
			}
		}
		restore[k] = v
	}
	if err := s.patchMeta(ctx, restore); err != nil {
		zerolog.Ctx(ctx).Warn().Str("location", s.Location()).Err(err).Msg("vault_kv: could not restore custom metadata after a conflict")
	}
}

// Rollback restores the data of st.Prev as a new version, written with
// check-and-set against the version this rotation wrote. When the path did
// not exist before (st.Prev is ""), or st.Prev was deleted or destroyed,
// the version this rotation wrote is soft-deleted instead, so that the path
// again serves nothing; it can be undeleted. A current version written by
// someone else is plugin.ErrConflict.
func (s *Sink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	if err := s.checkMount(ctx); err != nil {
		return err
	}
	prev, err := parseVersion(st.Prev)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Location(), err)
	}
	promoted, err := parseVersion(st.Promoted)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Location(), err)
	}
	m, err := s.readMeta(ctx)
	if err != nil {
		return err
	}
	if m == nil {
		if prev == 0 {
			return nil
		}
		return fmt.Errorf("%s: the path was deleted with all its versions since version %d: %w", s.Location(), prev, plugin.ErrConflict)
	}
	cur := m.current
	log := zerolog.Ctx(ctx).With().Str("location", s.Location()).Logger()
	switch {
	case cur == prev:
		if m.ours(rot.ID) && m.custom[MetaVersion] == strconv.Itoa(prev+1) {
			s.unclaim(ctx, nil, map[string]any{MetaVersion: nil})
		}
		return nil
	case m.ours(rot.ID) && m.custom[MetaRollbackVersion] == strconv.Itoa(cur):
		return nil
	}
	mine := (promoted != 0 && cur == promoted) ||
		(m.ours(rot.ID) && m.custom[MetaVersion] == strconv.Itoa(cur))
	if !mine {
		return fmt.Errorf("%s: current version %d was not written by rotation %s: %w", s.Location(), cur, rot.ID, plugin.ErrConflict)
	}

	restoreDeleted := prev == 0
	var data map[string]any
	if !restoreDeleted {
		pv, known := m.versions[prev]
		switch {
		case known && (pv.deleted || pv.destroyed):
			restoreDeleted = true
		default:
			var deleted bool
			data, deleted, err = s.readData(ctx, prev)
			if err != nil {
				return fmt.Errorf("rolling back: %w", err)
			}
			restoreDeleted = deleted
		}
	}
	if restoreDeleted {
		if m.versions[cur].deleted || m.versions[cur].destroyed {
			return nil
		}
		err := s.conn.Do(ctx, func(c *api.Client) error {
			_, err := c.Logical().WriteWithContext(ctx, s.mount+"/delete/"+s.path, map[string]any{"versions": []int{cur}})
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: soft-deleting version %d: %w", s.Location(), cur, err)
		}
		log.Info().Int("version", cur).Msg("vault_kv: rolled back by soft-deleting the version this rotation wrote (the path served nothing before)")
		return nil
	}

	if err := s.patchMeta(ctx, map[string]any{
		MetaRotationID:      nonEmpty(rot.ID),
		MetaRollbackVersion: strconv.Itoa(cur + 1),
		MetaRolledBackAt:    time.Now().UTC().Format(time.RFC3339),
	}); err != nil {
		return err
	}
	n, err := s.write(ctx, data, cur)
	if err != nil {
		if errors.Is(err, plugin.ErrConflict) {
			s.unclaim(ctx, nil, map[string]any{MetaRollbackVersion: nil, MetaRolledBackAt: nil})
		}
		return fmt.Errorf("rolling back: %w", err)
	}
	log.Info().Int("version", n).Int("restored", prev).Msg("vault_kv: rolled back by writing the previous data as a new version")
	return nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// nonEmpty keeps a custom metadata value valid (Vault refuses empty ones).
func nonEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
