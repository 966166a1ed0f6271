package vaultkv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/connections/vault"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

const canary = "CANARY-s3cr3t-value-7f1e9a"

type fixture struct {
	srv  *vaulttest.Server
	conn *vault.Conn
	sink sinks.Sink
	ctx  context.Context
	logs *vaulttest.LogBuffer
	errs []string
}

func (f *fixture) record(err error) error {
	f.errs = append(f.errs, vaulttest.ErrText(err))
	return err
}

// setup starts a server with a KV v2 mount "kv" and a sink on kv/app/creds
// whose connection uses the root token (read from a token file).
func setup(t *testing.T, opts ...vaulttest.KVOption) *fixture {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.EnableKV(t, "kv", 2, opts...)
	f := &fixture{srv: srv}
	f.conn, _ = srv.Connection(t, "")
	f.sink = newSink(t, f.conn, "kv", "app/creds", "")
	f.ctx, f.logs = vaulttest.Logger(t)
	t.Cleanup(func() {
		vaulttest.AssertNoLeak(t, append([]string{f.logs.String()}, f.errs...), srv.RootToken, canary)
	})
	return f
}

func newSink(t testing.TB, conn *vault.Conn, mount, path, extra string) sinks.Sink {
	t.Helper()
	conns := plugin.NewConnections()
	conns.Add(vault.Kind, "main", conn)
	body := vaulttest.Body(t, "connection = vault.main\nmount = \""+mount+"\"\npath = \""+path+"\"\n"+extra)
	s, diags := vaultkv.New(vaulttest.Env(t, conns), body)
	if diags.HasErrors() {
		t.Fatalf("sink: %s", diags.Error())
	}
	return s
}

func rotation(id string) plugin.Rotation {
	return plugin.Rotation{ID: id, Policy: "payments", Generation: 3, StartedAt: time.Now()}
}

func key(id, value string) plugin.Key {
	return plugin.Key{ID: id, Value: secret.Fields{"username": secret.New("svc"), "password": secret.New(value)}}
}

func (f *fixture) rootWrite(t *testing.T, data map[string]any) int {
	t.Helper()
	sec, err := f.srv.Client.KVv2("kv").Put(context.Background(), "app/creds", data)
	if err != nil {
		t.Fatalf("root write: %v", err)
	}
	return sec.VersionMetadata.Version
}

func (f *fixture) metadata(t *testing.T) *api.KVMetadata {
	t.Helper()
	m, err := f.srv.Client.KVv2("kv").GetMetadata(context.Background(), "app/creds")
	if err != nil {
		t.Fatalf("reading metadata: %v", err)
	}
	return m
}

func (f *fixture) dataAt(t *testing.T, v int) map[string]any {
	t.Helper()
	s, err := f.srv.Client.KVv2("kv").GetVersion(context.Background(), "app/creds", v)
	if err != nil {
		t.Fatalf("reading version %d: %v", v, err)
	}
	return s.Data
}

func (f *fixture) current(t *testing.T) sinks.Version {
	t.Helper()
	v, err := f.sink.Current(f.ctx)
	if f.record(err) != nil {
		t.Fatalf("Current: %v", err)
	}
	return v
}

func TestPromoteCreatesAbsentPath(t *testing.T) {
	t.Parallel()
	f := setup(t)
	if v := f.current(t); v != "" {
		t.Fatalf("Current of an absent path = %q, want empty", v)
	}
	rot := rotation("rot-create")
	v, err := f.sink.Promote(f.ctx, rot, key("AKIAEXAMPLEKEY0001", canary), sinks.State{})
	if f.record(err) != nil {
		t.Fatalf("Promote: %v", err)
	}
	if v != "1" {
		t.Fatalf("Promote = %q, want 1", v)
	}
	if got := f.dataAt(t, 1); got["password"] != canary || got["username"] != "svc" || len(got) != 2 {
		t.Fatalf("data written has fields %v", keys(got))
	}
	m := f.metadata(t)
	want := map[string]string{
		vaultkv.MetaRotationID: "rot-create",
		vaultkv.MetaPolicy:     "payments",
		vaultkv.MetaGeneration: "3",
		vaultkv.MetaKeyID:      secret.Mask("AKIAEXAMPLEKEY0001"),
		vaultkv.MetaVersion:    "1",
	}
	for k, w := range want {
		if m.CustomMetadata[k] != w {
			t.Errorf("custom_metadata[%s] = %v, want %q", k, m.CustomMetadata[k], w)
		}
	}
	if _, err := time.Parse(time.RFC3339, m.CustomMetadata[vaultkv.MetaRotatedAt].(string)); err != nil {
		t.Errorf("rekey_rotated_at: %v", err)
	}
	if v := f.current(t); v != "1" {
		t.Fatalf("Current after promote = %q", v)
	}
	if got := f.sink.Location(); got != "vault_kv:main:kv/app/creds" {
		t.Errorf("Location = %q", got)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestPromoteWritesNewVersionWithCASAndIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"username": "svc", "password": "old"})
	prev := f.current(t)
	if prev != "1" {
		t.Fatalf("Current = %q", prev)
	}
	rot, k := rotation("rot-cas"), key("id-2", canary)
	st := sinks.State{Prev: prev}
	v, err := f.sink.Promote(f.ctx, rot, k, st)
	if f.record(err) != nil || v != "2" {
		t.Fatalf("Promote = %q, %v; want 2", v, err)
	}
	v, err = f.sink.Promote(f.ctx, rot, k, st)
	if f.record(err) != nil || v != "2" {
		t.Fatalf("Promote again = %q, %v; want 2 (idempotent)", v, err)
	}
	if m := f.metadata(t); m.CurrentVersion != 2 || len(m.Versions) != 2 {
		t.Fatalf("current %d with %d versions, want 2 and 2", m.CurrentVersion, len(m.Versions))
	}
	// The same rotation with another value is not mistaken for its write.
	_, err = f.sink.Promote(f.ctx, rot, key("id-2", "other"), st)
	if f.record(err); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Promote of a different value = %v, want ErrConflict", err)
	}
}

func TestPromoteConflictWithAnotherWriter(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	prev := f.current(t)
	f.rootWrite(t, map[string]any{"password": "written-by-someone-else"})

	_, err := f.sink.Promote(f.ctx, rotation("rot-conflict"), key("id", canary), sinks.State{Prev: prev})
	f.record(err)
	if !errors.Is(err, plugin.ErrConflict) || !plugin.IsPermanent(err) {
		t.Fatalf("Promote = %v, want a permanent ErrConflict", err)
	}
	m := f.metadata(t)
	if m.CurrentVersion != 2 || len(m.Versions) != 2 {
		t.Fatalf("current %d with %d versions after a conflict, want 2 and 2", m.CurrentVersion, len(m.Versions))
	}
	if got := f.dataAt(t, 2)["password"]; got != "written-by-someone-else" {
		t.Fatal("the other writer's data was overwritten")
	}
	if _, ok := m.CustomMetadata[vaultkv.MetaRotationID]; ok {
		t.Errorf("custom metadata claims the other writer's version: %v", m.CustomMetadata)
	}
}

// TestPromoteConflictInsideTheWindow makes the other write land after the
// sink read the metadata and wrote its claim, just before its data write (a
// real reverse proxy in front of Vault lets the other writer in), so that
// the check-and-set write itself fails.
func TestPromoteConflictInsideTheWindow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	target, err := url.Parse(f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var once sync.Once
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/kv/data/app/creds" {
			once.Do(func() {
				_, err := f.srv.Client.KVv2("kv").Put(context.Background(), "app/creds", map[string]any{"password": "racer"}, api.WithCheckAndSet(1))
				if err != nil {
					t.Errorf("racing write: %v", err)
				}
			})
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	conn, _ := f.srv.ConnectionVia(t, proxy.URL, "")
	s := newSink(t, conn, "kv", "app/creds", "")

	_, err = s.Promote(f.ctx, rotation("rot-window"), key("id", canary), sinks.State{Prev: "1"})
	f.record(err)
	if !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Promote = %v, want ErrConflict", err)
	}
	m := f.metadata(t)
	if m.CurrentVersion != 2 || len(m.Versions) != 2 || f.dataAt(t, 2)["password"] != "racer" {
		t.Fatal("the racing writer's data was overwritten")
	}
	if m.CustomMetadata[vaultkv.MetaRotationID] == "rot-window" {
		t.Errorf("the claim was not withdrawn after the conflict: %v", m.CustomMetadata)
	}
	// Rolling back after the conflict must not touch the racer's version.
	if err := f.record(s.Rollback(f.ctx, rotation("rot-window"), sinks.State{Prev: "1"})); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Rollback = %v, want ErrConflict", err)
	}
}

func TestCASRequiredMount(t *testing.T) {
	t.Parallel()
	f := setup(t, vaulttest.CASRequired())
	if _, err := f.srv.Client.KVv2("kv").Put(context.Background(), "app/creds", map[string]any{"password": "x"}); err == nil || !strings.Contains(err.Error(), "check-and-set parameter required") {
		t.Fatalf("a write without cas on the cas_required mount = %v, want refused", err)
	}
	v, err := f.sink.Promote(f.ctx, rotation("rot-casreq"), key("id", canary), sinks.State{})
	if f.record(err) != nil || v != "1" {
		t.Fatalf("Promote = %q, %v", v, err)
	}
	v2, err := f.sink.Promote(f.ctx, rotation("rot-casreq-2"), key("id2", canary+"-2"), sinks.State{Prev: v})
	if f.record(err) != nil || v2 != "2" {
		t.Fatalf("second Promote = %q, %v", v2, err)
	}
	if err := f.record(f.sink.Rollback(f.ctx, rotation("rot-casreq-2"), sinks.State{Prev: v, Promoted: v2})); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if got := f.dataAt(t, 3)["password"]; got != canary {
		t.Fatal("rollback on the cas_required mount did not restore version 1's data")
	}
}

func TestKVVersion1Refused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.srv.EnableKV(t, "old", 1)
	s := newSink(t, f.conn, "old", "app/creds", "")
	_, err := s.Current(f.ctx)
	f.record(err)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), `mount "old" is KV version 1`) || !strings.Contains(err.Error(), "vault kv enable-versioning old") {
		t.Fatalf("Current on a v1 mount = %v", err)
	}
	_, err = s.Promote(f.ctx, rotation("r"), key("id", canary), sinks.State{})
	if f.record(err); err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("Promote on a v1 mount = %v", err)
	}
	if sec, _ := f.srv.Client.Logical().Read("old/app/creds"); sec != nil {
		t.Fatal("something was written to the v1 mount")
	}
}

func TestMountNotAMountPoint(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := newSink(t, f.conn, "kv/app", "creds", "")
	_, err := s.Current(f.ctx)
	if f.record(err); err == nil || !strings.Contains(err.Error(), `set mount = "kv"`) {
		t.Fatalf("Current with a mount inside a mount = %v", err)
	}
}

func TestRollbackRestoresPreviousAsNewVersion(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"username": "svc", "password": "old"})
	prev := f.current(t)
	rot := rotation("rot-rb")
	v, err := f.sink.Promote(f.ctx, rot, key("id", canary), sinks.State{Prev: prev})
	if f.record(err) != nil {
		t.Fatal(err)
	}
	for _, st := range []sinks.State{{Prev: prev, Promoted: v}, {Prev: prev, Promoted: v}, {Prev: prev}} {
		if err := f.record(f.sink.Rollback(f.ctx, rot, st)); err != nil {
			t.Fatalf("Rollback(%+v): %v", st, err)
		}
	}
	m := f.metadata(t)
	if m.CurrentVersion != 3 || len(m.Versions) != 3 {
		t.Fatalf("current %d with %d versions, want 3 and 3 (rollback repeated must not write again)", m.CurrentVersion, len(m.Versions))
	}
	if got := f.dataAt(t, 3); got["password"] != "old" || got["username"] != "svc" {
		t.Fatal("version 3 does not hold version 1's data")
	}
	if got := f.dataAt(t, 2)["password"]; got != canary {
		t.Fatal("version 2 (the rotation's write) was not kept in history")
	}
	if m.CustomMetadata[vaultkv.MetaRollbackVersion] != "3" {
		t.Errorf("rekey_rollback_version = %v", m.CustomMetadata[vaultkv.MetaRollbackVersion])
	}
}

// TestRollbackAfterCrashBeforeJournal: the engine crashed after Promote but
// before journaling its version; the sink recognises its write by rotation.
func TestRollbackAfterCrashBeforeJournal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	rot := rotation("rot-crash")
	if _, err := f.sink.Promote(f.ctx, rot, key("id", canary), sinks.State{Prev: "1"}); f.record(err) != nil {
		t.Fatal(err)
	}
	if err := f.record(f.sink.Rollback(f.ctx, rot, sinks.State{Prev: "1"})); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if got := f.dataAt(t, 3)["password"]; got != "old" {
		t.Fatal("not restored")
	}
	// Another rotation does not recognise the write as its own.
	if err := f.record(f.sink.Rollback(f.ctx, rotation("rot-other"), sinks.State{Prev: "1"})); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Rollback by another rotation = %v, want ErrConflict", err)
	}
}

func TestRollbackWhenPathDidNotExist(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rot := rotation("rot-new")
	v, err := f.sink.Promote(f.ctx, rot, key("id", canary), sinks.State{})
	if f.record(err) != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.record(f.sink.Rollback(f.ctx, rot, sinks.State{Promoted: v})); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
	}
	sec, err := f.srv.Client.KVv2("kv").Get(context.Background(), "app/creds")
	if err != nil {
		t.Fatalf("reading after rollback: %v", err)
	}
	if sec.Data != nil || sec.VersionMetadata.DeletionTime.IsZero() {
		t.Fatal("the version written is still served; want it soft-deleted")
	}
	m := f.metadata(t)
	if m.CurrentVersion != 1 || m.Versions["1"].Destroyed {
		t.Fatalf("history not kept: current %d, versions %v", m.CurrentVersion, m.Versions)
	}
	if err := f.srv.Client.KVv2("kv").Undelete(context.Background(), "app/creds", []int{1}); err != nil {
		t.Fatalf("the soft-deleted version cannot be undeleted: %v", err)
	}
	// Before anything was written, rolling back changes nothing.
	s2 := newSink(t, f.conn, "kv", "never/written", "")
	if err := f.record(s2.Rollback(f.ctx, rotation("rot-none"), sinks.State{})); err != nil {
		t.Fatalf("Rollback of an untouched absent path: %v", err)
	}
}

func TestRollbackNothingWritten(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	if err := f.record(f.sink.Rollback(f.ctx, rotation("rot-noop"), sinks.State{Prev: "1"})); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if m := f.metadata(t); m.CurrentVersion != 1 {
		t.Fatalf("current version %d, want 1", m.CurrentVersion)
	}
}

func TestRollbackConflict(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	rot := rotation("rot-rbc")
	v, err := f.sink.Promote(f.ctx, rot, key("id", canary), sinks.State{Prev: "1"})
	if f.record(err) != nil {
		t.Fatal(err)
	}
	f.rootWrite(t, map[string]any{"password": "newer-by-someone-else"})
	err = f.sink.Rollback(f.ctx, rot, sinks.State{Prev: "1", Promoted: v})
	if f.record(err); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("Rollback = %v, want ErrConflict", err)
	}
	m := f.metadata(t)
	if m.CurrentVersion != 3 || f.dataAt(t, 3)["password"] != "newer-by-someone-else" {
		t.Fatal("rollback changed a version written by someone else")
	}
}

func TestRollbackToDeletedPrevious(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	if err := f.srv.Client.KVv2("kv").Delete(context.Background(), "app/creds"); err != nil {
		t.Fatal(err)
	}
	prev := f.current(t)
	if prev != "1" {
		t.Fatalf("Current of a deleted version = %q, want 1", prev)
	}
	rot := rotation("rot-del")
	v, err := f.sink.Promote(f.ctx, rot, key("id", canary), sinks.State{Prev: prev})
	if f.record(err) != nil || v != "2" {
		t.Fatalf("Promote = %q, %v", v, err)
	}
	if err := f.record(f.sink.Rollback(f.ctx, rot, sinks.State{Prev: prev, Promoted: v})); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	sec, err := f.srv.Client.KVv2("kv").Get(context.Background(), "app/creds")
	if err != nil || sec.Data != nil {
		t.Fatalf("after rollback to a deleted version the path serves data (%v)", err)
	}
}

func TestCustomMetadataFromConfig(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	if err := f.srv.Client.KVv2("kv").PatchMetadata(context.Background(), "app/creds", api.KVMetadataPatchInput{CustomMetadata: map[string]any{"owner": "team-a"}}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, f.conn, "kv", "app/creds", `custom_metadata = { managed_by = "rekey" }`)
	if _, err := s.Promote(f.ctx, rotation("rot-md"), key("id", canary), sinks.State{Prev: "1"}); f.record(err) != nil {
		t.Fatal(err)
	}
	m := f.metadata(t)
	if m.CustomMetadata["managed_by"] != "rekey" || m.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("custom metadata = %v; want the configured key added and the existing one kept", m.CustomMetadata)
	}
}

func TestSealedVaultDuringPromote(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"password": "old"})
	prev := f.current(t)
	f.srv.Seal(t)

	ctx, cancel := context.WithTimeout(f.ctx, time.Second)
	_, err := f.sink.Promote(ctx, rotation("rot-sealed"), key("id", canary), sinks.State{Prev: prev})
	cancel()
	f.record(err)
	if err == nil || plugin.IsPermanent(err) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Promote on a sealed vault = %v, want a retryable 503 error", err)
	}
	if !strings.Contains(f.logs.String(), "retrying") {
		t.Error("no retry was logged")
	}

	// Unsealed while Promote retries: it completes within its deadline.
	ctx, cancel = context.WithTimeout(f.ctx, 60*time.Second)
	defer cancel()
	type result struct {
		v   sinks.Version
		err error
	}
	res := make(chan result, 1)
	before := strings.Count(f.logs.String(), "retrying")
	go func() {
		v, err := f.sink.Promote(ctx, rotation("rot-sealed"), key("id", canary), sinks.State{Prev: prev})
		res <- result{v, err}
	}()
	for strings.Count(f.logs.String(), "retrying") == before {
		time.Sleep(10 * time.Millisecond)
	}
	f.srv.Unseal(t)
	r := <-res
	if f.record(r.err) != nil || r.v != "2" {
		t.Fatalf("Promote across an unseal = %q, %v", r.v, r.err)
	}
	if m := f.metadata(t); m.CurrentVersion != 2 || f.dataAt(t, 2)["password"] != canary {
		t.Fatal("the write did not land whole")
	}
}

func TestFactoryDiagnostics(t *testing.T) {
	t.Parallel()
	srv := &vaulttest.Server{Addr: "http://127.0.0.1:1", RootToken: "unused"}
	conn, conns := srv.Connection(t, "")
	_ = conn
	for name, tc := range map[string]struct{ body, want string }{
		"missing path":             {`connection = vault.main` + "\n" + `mount = "kv"`, `"path" is required`},
		"dot dot in path":          {`connection = vault.main` + "\n" + `mount = "kv"` + "\n" + `path = "a/../b"`, `segment`},
		"reserved metadata":        {`connection = vault.main` + "\n" + `mount = "kv"` + "\n" + `path = "a"` + "\n" + `custom_metadata = { rekey_x = "1" }`, `reserves`},
		"unknown attribute":        {`connection = vault.main` + "\n" + `mount = "kv"` + "\n" + `path = "a"` + "\n" + `pathh = "b"`, `Unsupported argument`},
		"connection of other kind": {`connection = aws.main` + "\n" + `mount = "kv"` + "\n" + `path = "a"`, `vault connection`},
		"unknown connection":       {`connection = vault.other` + "\n" + `mount = "kv"` + "\n" + `path = "a"`, `No vault connection "other"`},
	} {
		_, diags := vaultkv.New(vaulttest.Env(t, conns), vaulttest.Body(t, tc.body))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%s: diagnostics %q, want %q", name, diags.Error(), tc.want)
		}
		for _, d := range diags {
			if d.Subject == nil {
				t.Errorf("%s: diagnostic without a source range: %s", name, d.Summary)
			}
		}
	}
}

// TestReadBackMismatch puts a real reverse proxy in front of Vault that
// alters the data of the write: Promote must notice on reading back, and
// the rollback must then restore the previous data.
func TestReadBackMismatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.rootWrite(t, map[string]any{"username": "svc", "password": "old"})
	target, err := url.Parse(f.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/kv/data/app/creds" {
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				t.Errorf("decoding the write: %v", err)
			}
			if d, ok := body["data"].(map[string]any); ok && d["password"] == canary {
				d["password"] = "tampered"
			}
			b, _ := json.Marshal(body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	conn, _ := f.srv.ConnectionVia(t, proxy.URL, "")
	s := newSink(t, conn, "kv", "app/creds", "")
	rot := rotation("rot-tamper")
	_, err = s.Promote(f.ctx, rot, key("id", canary), sinks.State{Prev: "1"})
	f.record(err)
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "read back differs") {
		t.Fatalf("Promote through a tampering proxy = %v", err)
	}
	if err := f.record(s.Rollback(f.ctx, rot, sinks.State{Prev: "1"})); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if m := f.metadata(t); m.CurrentVersion != 3 || f.dataAt(t, 3)["password"] != "old" {
		t.Fatal("the previous data was not restored")
	}
}
