package kubesecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/testenv/kubetest"
)

const canary = "CANARY-kube-3f1e9b77c2"

func decode(t *testing.T, src string) (*Sink, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "policy.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing: %s", diags)
	}
	env := &plugin.Env{Policy: "payments", Kind: Kind, BaseDir: t.TempDir(), DefRange: hcl.Range{Filename: "policy.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
	s, diags := New(env, f.Body)
	if s == nil {
		return nil, diags
	}
	return s.(*Sink), diags
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"no way to reach the cluster", `namespace = "a"
name = "b"`, "One way to reach the cluster"},
		{"two ways", `namespace = "a"
name = "b"
in_cluster = true
kubeconfig = "/x"`, "One way to reach the cluster"},
		{"bad namespace", `namespace = "A_b"
name = "b"
in_cluster = true`, "Invalid namespace"},
		{"bad name", `namespace = "a"
name = "B!"
in_cluster = true`, "Invalid name"},
		{"bad data key", `namespace = "a"
name = "b"
in_cluster = true
data = { "a b" = "password" }`, "Invalid data key"},
		{"reserved annotation", `namespace = "a"
name = "b"
in_cluster = true
annotations = { "rekey.dev/x" = "y" }`, "Reserved annotation"},
		{"plain http server", `namespace = "a"
name = "b"
server = "http://k:6443"
token_file = "/t"`, "Invalid server"},
		{"server without token", `namespace = "a"
name = "b"
server = "https://k:6443"`, "token_file required"},
		{"companion is the secret", `namespace = "a"
name = "b"
in_cluster = true
previous_name = "b"`, "Invalid previous_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := decode(t, tc.src)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("got %v, want %q", diags, tc.want)
			}
		})
	}
}

func TestKubeconfigRefusesInsecureAndExec(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"insecure": "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://k\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n",
		"exec":     "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://k\nusers:\n- name: u\n  user:\n    exec:\n      command: aws\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, diags := decode(t, fmt.Sprintf("namespace = \"a\"\nname = \"b\"\nkubeconfig = %q\n", p))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "Invalid kubeconfig") {
			t.Errorf("%s: %v", name, diags)
		}
	}
}

// rekeyRole is the Role the README documents: get and update on the Secret
// and its companion, create for the companion.
func rekeyRole(name string) []map[string]any {
	return []map[string]any{
		{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": []string{"get", "update"}, "resourceNames": []string{name, name + "-rekey-previous"}},
		{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": []string{"create"}},
	}
}

type cluster struct {
	*kubetest.Server
}

func (c cluster) secret(t *testing.T, ns, name string) *object {
	t.Helper()
	code, b, err := c.Do("GET", "/api/v1/namespaces/"+ns+"/secrets/"+name, c.AdminToken, nil)
	if err != nil || code != 200 {
		t.Fatalf("reading secret %s/%s: %d %v %s", ns, name, code, err, b)
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

func (c cluster) putData(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	o := c.secret(t, ns, name)
	o.Data = map[string][]byte{}
	for k, v := range data {
		o.Data[k] = []byte(v)
	}
	c.MustDo(t, "PUT", "/api/v1/namespaces/"+ns+"/secrets/"+name, o)
}

func (c cluster) createSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	d := map[string][]byte{}
	for k, v := range data {
		d[k] = []byte(v)
	}
	c.MustDo(t, "POST", "/api/v1/namespaces/"+ns+"/secrets", object{APIVersion: "v1", Kind: "Secret", Type: "Opaque", Metadata: objectMeta{Name: name}, Data: d})
}

var (
	startOnce sync.Once
	shared    cluster
)

func start(t *testing.T) cluster {
	t.Helper()
	if os.Getenv(kubetest.EnvBinary) == "" {
		kubetest.Start(t)
	}
	startOnce.Do(func() { shared = cluster{kubetest.Start(&onceT{T: t}, "rekey", "rekey-readonly")} })
	if shared.Server == nil {
		t.Fatal("the API server did not start")
	}
	return shared
}

// onceT keeps the shared server alive past the first test: its cleanups run
// at the end of the test binary (TestMain).
type onceT struct{ *testing.T }

var cleanups []func()

func (o *onceT) Cleanup(f func()) { cleanups = append(cleanups, f) }
func (o *onceT) TempDir() string {
	d, err := os.MkdirTemp("", "kubetest")
	if err != nil {
		o.T.Fatal(err)
	}
	cleanups = append(cleanups, func() { _ = os.RemoveAll(d) })
	return d
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

var nsSeq int

func namespace(t *testing.T, c cluster) string {
	nsSeq++
	ns := fmt.Sprintf("t%d-%d", nsSeq, time.Now().UnixNano()%100000)
	c.Namespace(t, ns)
	return ns
}

func sinkFor(t *testing.T, c cluster, user, ns, name string, extra string) *Sink {
	t.Helper()
	if !strings.Contains(extra, "data =") {
		extra = "data = { API_KEY = \"api_key\" }\n" + extra
	}
	s, diags := decode(t, fmt.Sprintf("namespace = %q\nname = %q\nkubeconfig = %q\n%s", ns, name, c.Kubeconfig(t, user), extra))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return s
}

func key(v string) plugin.Key {
	return plugin.Key{ID: "k-" + v[len(v)-4:], Value: secret.Fields{"api_key": secret.New(v)}}
}

func rot(id string) plugin.Rotation {
	return plugin.Rotation{ID: id, Policy: "payments", Generation: 2, StartedAt: time.Now()}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStagePromoteRollbackFinish(t *testing.T) {
	c := start(t)
	ns := namespace(t, c)
	c.createSecret(t, ns, "app", map[string]string{"API_KEY": "old-value", "OTHER": "kept"})
	c.Grant(t, ns, "rekey", rekeyRole("app")...)
	s := sinkFor(t, c, "rekey", ns, "app", `labels = { team = "payments" }`)

	prev, err := s.Current(ctx(t))
	if err != nil || prev == "" {
		t.Fatalf("current: %q %v", prev, err)
	}
	r := rot("rot-1")
	st := sinks.State{Prev: prev}
	if _, err := s.Stage(ctx(t), r, key(canary+"-new1"), st); err != nil {
		t.Fatal(err)
	}
	comp := c.secret(t, ns, "app-rekey-previous")
	if string(comp.Data["API_KEY"]) != "old-value" || comp.Metadata.Annotations[AnnRotationID] != "rot-1" {
		t.Fatalf("companion does not hold the previous value: %+v", comp.Metadata)
	}
	if got := c.secret(t, ns, "app"); string(got.Data["API_KEY"]) != "old-value" {
		t.Fatal("stage changed what dependents are served")
	}
	v, err := s.Promote(ctx(t), r, key(canary+"-new1"), st)
	if err != nil {
		t.Fatal(err)
	}
	got := c.secret(t, ns, "app")
	if string(got.Data["API_KEY"]) != canary+"-new1" || string(got.Data["OTHER"]) != "kept" || got.Metadata.Annotations[AnnRotationID] != "rot-1" || got.Metadata.Labels["team"] != "payments" {
		t.Fatalf("after promote: %+v", got.Metadata)
	}
	if sinks.Version(got.Metadata.ResourceVersion) != v {
		t.Fatalf("promote returned %s, the Secret is at %s", v, got.Metadata.ResourceVersion)
	}
	again, err := s.Promote(ctx(t), r, key(canary+"-new1"), st)
	if err != nil || again != v {
		t.Fatalf("promote twice: %s %v, want %s", again, err, v)
	}

	// A new process (after a crash) rolls back with only Prev journaled.
	s2 := sinkFor(t, c, "rekey", ns, "app", "")
	if err := s2.Rollback(ctx(t), r, sinks.State{Prev: prev}); err != nil {
		t.Fatal(err)
	}
	got = c.secret(t, ns, "app")
	if string(got.Data["API_KEY"]) != "old-value" || string(got.Data["OTHER"]) != "kept" {
		t.Fatal("rollback did not restore the previous value")
	}
	if _, ok := got.Metadata.Annotations[AnnRotationID]; ok {
		t.Fatal("rollback left this rotation's annotation")
	}
	if comp := c.secret(t, ns, "app-rekey-previous"); len(comp.Data) != 0 {
		t.Fatal("the companion still holds the previous value after rollback")
	}
	if err := s2.Rollback(ctx(t), r, sinks.State{Prev: prev}); err == nil || !errors.Is(err, plugin.ErrConflict) {
		// After the restore the Secret is no longer this rotation's and
		// not at Prev either: a second rollback changes nothing.
		t.Logf("second rollback: %v", err)
	}

	// A full rotation that commits: Finish empties the companion.
	prev, _ = s.Current(ctx(t))
	r2 := rot("rot-2")
	st = sinks.State{Prev: prev}
	if _, err := s.Stage(ctx(t), r2, key(canary+"-new2"), st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Promote(ctx(t), r2, key(canary+"-new2"), st); err != nil {
		t.Fatal(err)
	}
	if comp := c.secret(t, ns, "app-rekey-previous"); string(comp.Data["API_KEY"]) != "old-value" {
		t.Fatal("companion lost the previous value before the rotation ended")
	}
	if err := s.Finish(ctx(t), r2); err != nil {
		t.Fatal(err)
	}
	if comp := c.secret(t, ns, "app-rekey-previous"); len(comp.Data) != 0 {
		t.Fatal("Finish left the previous value in the companion")
	}
}

func TestOutsideWriterConflicts(t *testing.T) {
	c := start(t)
	ns := namespace(t, c)
	c.createSecret(t, ns, "app", map[string]string{"API_KEY": "old-value"})
	c.Grant(t, ns, "rekey", rekeyRole("app")...)
	s := sinkFor(t, c, "rekey", ns, "app", "")
	prev, err := s.Current(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	r := rot("rot-c")
	st := sinks.State{Prev: prev}
	if _, err := s.Stage(ctx(t), r, key(canary+"-c1"), st); err != nil {
		t.Fatal(err)
	}
	c.putData(t, ns, "app", map[string]string{"API_KEY": "written-by-someone-else"})
	_, err = s.Promote(ctx(t), r, key(canary+"-c1"), st)
	if !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("promote after an outside write: %v, want a conflict", err)
	}
	if got := c.secret(t, ns, "app"); string(got.Data["API_KEY"]) != "written-by-someone-else" {
		t.Fatal("the outside writer's value was overwritten")
	}
	if err := s.Rollback(ctx(t), r, st); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("rollback over an outside write: %v, want a conflict", err)
	}
	if got := c.secret(t, ns, "app"); string(got.Data["API_KEY"]) != "written-by-someone-else" {
		t.Fatal("rollback overwrote the outside writer's value")
	}
	if strings.Contains(fmt.Sprint(err), canary) {
		t.Fatal("an error carries the secret")
	}
}

// TestRBAC runs the sink with exactly the documented Role, then with each
// permission taken away: every missing permission gives a clear,
// permanent error naming the verb.
func TestRBAC(t *testing.T) {
	c := start(t)
	ns := namespace(t, c)
	c.createSecret(t, ns, "app", map[string]string{"API_KEY": "old-value"})
	c.createSecret(t, ns, "unrelated", map[string]string{"TOKEN": "not-for-rekey"})
	c.Grant(t, ns, "rekey", rekeyRole("app")...)

	s := sinkFor(t, c, "rekey", ns, "app", "")
	prev, err := s.Current(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	r := rot("rot-r")
	st := sinks.State{Prev: prev}
	if _, err := s.Stage(ctx(t), r, key(canary+"-r1"), st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Promote(ctx(t), r, key(canary+"-r1"), st); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	// Nothing more: not another Secret, not a list of them.
	for _, path := range []string{"/api/v1/namespaces/" + ns + "/secrets/unrelated", "/api/v1/namespaces/" + ns + "/secrets"} {
		if code, _, _ := c.Do("GET", path, c.Tokens["rekey"], nil); code != 403 {
			t.Errorf("rekey's Role allows GET %s (%d): it must allow only its own Secrets", path, code)
		}
	}

	// A Role with get only: promote is forbidden, and says what to grant.
	ns2 := namespace(t, c)
	c.createSecret(t, ns2, "app", map[string]string{"API_KEY": "old-value"})
	c.Grant(t, ns2, "rekey-readonly", map[string]any{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": []string{"get"}, "resourceNames": []string{"app", "app-rekey-previous"}})
	ro := sinkFor(t, c, "rekey-readonly", ns2, "app", "")
	prev, err = ro.Current(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ro.Stage(ctx(t), r, key(canary+"-r2"), sinks.State{Prev: prev})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "forbidden (403)") || !strings.Contains(err.Error(), `"create"`) {
		t.Fatalf("stage without create: %v", err)
	}
	_, err = ro.Promote(ctx(t), r, key(canary+"-r2"), sinks.State{Prev: prev})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), `"update"`) || !strings.Contains(err.Error(), "RBAC") {
		t.Fatalf("promote without update: %v", err)
	}
	if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), c.Tokens["rekey-readonly"]) {
		t.Fatal("the error carries a secret or the token")
	}
}

func TestMissingSecret(t *testing.T) {
	c := start(t)
	ns := namespace(t, c)
	c.Grant(t, ns, "rekey", rekeyRole("app")...)
	s := sinkFor(t, c, "rekey", ns, "app", "")
	prev, err := s.Current(ctx(t))
	if err != nil || prev != "" {
		t.Fatalf("current of a missing Secret: %q %v", prev, err)
	}
	_, err = s.Promote(ctx(t), rot("rot-m"), key(canary+"-m1"), sinks.State{})
	if err == nil || !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "create_if_missing") {
		t.Fatalf("promote to a missing Secret: %v", err)
	}
	s = sinkFor(t, c, "rekey", ns, "app", `create_if_missing = true
type = "kubernetes.io/basic-auth"
data = { password = "api_key" }`)
	r := rot("rot-m2")
	if _, err := s.Promote(ctx(t), r, plugin.Key{ID: "k", Value: secret.Fields{"api_key": secret.New(canary + "-m2")}}, sinks.State{}); err != nil {
		t.Fatal(err)
	}
	if got := c.secret(t, ns, "app"); got.Type != "kubernetes.io/basic-auth" || string(got.Data["password"]) != canary+"-m2" {
		t.Fatalf("created Secret: %s %v", got.Type, got.Metadata)
	}
	// Rolling back a Secret this rotation created restores its absence;
	// rekey's documented Role has no delete, so that is refused clearly.
	err = s.Rollback(ctx(t), r, sinks.State{})
	if err == nil || !strings.Contains(err.Error(), `"delete"`) {
		t.Fatalf("rollback of a created Secret without delete: %v", err)
	}
}
