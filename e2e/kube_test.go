package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/testenv/kubetest"
)

// kubeWorld is a Kubernetes Secret served by a real kube-apiserver, filled
// by rekey running with the least-privilege Role the README documents, and
// the quickstart's key service issuing the keys.
type kubeWorld struct {
	*promWorld // the key service half: store, accept
	api        *kubetest.Server
	ns         string
}

func newKubeWorld(t *testing.T, api *kubetest.Server, ns string) *kubeWorld {
	h := newHarness(t)
	ks, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "keyservice.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"keyservice.sh": string(ks),
		"probe.sh":      "#!/bin/sh\nset -eu\nprintf '%s' \"$REKEY_KEY_API_KEY\" | \"$(dirname \"$0\")/keyservice.sh\" auth -\n",
	} {
		if err := os.WriteFile(filepath.Join(h.dir, name), []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w := &kubeWorld{promWorld: &promWorld{h: h, store: filepath.Join(h.dir, "state", "keystore")}, api: api, ns: ns}
	api.Namespace(t, ns)
	api.Grant(t, ns, "rekey",
		map[string]any{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": []string{"get", "update"}, "resourceNames": []string{"app", "app-rekey-previous"}},
		map[string]any{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": []string{"create"}})
	// The Secret exists before rekey manages it (rekey's Role cannot
	// create it); the first rotation fills it.
	api.MustDo(t, "POST", "/api/v1/namespaces/"+ns+"/secrets", map[string]any{
		"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "app"}, "type": "Opaque",
		"data": map[string]any{"API_KEY": ""}})
	h.src = fmt.Sprintf(`state_dir = %q

policy "kube" {
  every = "30d"

  provider "exec" {
    create     = ["./keyservice.sh", "create"]
    list       = ["./keyservice.sh", "list"]
    delete     = ["./keyservice.sh", "delete"]
    deactivate = ["./keyservice.sh", "deactivate"]
    activate   = ["./keyservice.sh", "activate"]
    max_keys   = 2
    timeout    = "10s"
  }

  sink "kubernetes_secret" {
    kubeconfig = %q
    namespace  = %q
    name       = "app"
    data       = { API_KEY = "api_key" }
  }

  probe "exec" {
    target   = "key"
    command  = ["./probe.sh"]
    pass_key = true
    timeout  = "10s"
  }

  revoke {
    after = "0s"
    soak  = "200ms"
  }
}
`, filepath.Join(h.dir, "state", "rekey"), api.Kubeconfig(t, "rekey"), ns)
	return w
}

// served returns the key the Secret serves now.
func (w *kubeWorld) served() (string, error) {
	code, body, err := w.api.Do("GET", "/api/v1/namespaces/"+w.ns+"/secrets/app", w.api.AdminToken, nil)
	if err != nil || code != 200 {
		return "", fmt.Errorf("reading the Secret: %d %v", code, err)
	}
	var o struct {
		Data map[string][]byte `json:"data"`
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return "", err
	}
	return string(o.Data["API_KEY"]), nil
}

// watch reads the Secret every few milliseconds for the rest of the test
// and counts the reads that served a key the key service refuses.
type secretWatcher struct {
	reads, refused atomic.Int64
	mu             sync.Mutex
	first          string
}

func (w *kubeWorld) watch(t *testing.T) *secretWatcher {
	sw := &secretWatcher{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			key, err := w.served()
			if err != nil {
				continue
			}
			sw.reads.Add(1)
			if !w.accept(key) {
				sw.refused.Add(1)
				sw.mu.Lock()
				if sw.first == "" {
					sw.first = fmt.Sprintf("at %s the Secret served a key the key service refuses", time.Now().Format("15:04:05.000"))
				}
				sw.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return sw
}

func (w *kubeWorld) keys(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(w.store, "*.key"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestKubernetesSecretCrashAtEveryFailpoint crashes the engine at each
// failpoint of a rotation into a Kubernetes Secret (rekey has exactly the
// README's Role), restarts it over the same journal, reconciles and rotates
// to completion, while a watcher reads the Secret every few milliseconds:
// it must always serve a key the key service accepts. At the end exactly
// one key exists, the one the Secret serves, and the companion Secret that
// held the previous value is empty.
func TestKubernetesSecretCrashAtEveryFailpoint(t *testing.T) {
	api := kubetest.Start(t, "rekey")
	seq := 0
	for _, fp := range rotator.Failpoints {
		seq++
		ns := fmt.Sprintf("crash-%d", seq)
		t.Run(fp, func(t *testing.T) {
			if strings.HasPrefix(fp, "reload.") {
				t.Skip("the policy has no reload hook: pods read the Secret")
			}
			w := newKubeWorld(t, api, ns)
			h := w.h
			// The first rotation makes the key the Secret starts with.
			p := h.start(nil)
			if out := h.rotate(p, "kube"); out.Result != rotator.OutcomeDone {
				t.Fatalf("first rotation: %s %v", out.Result, out.Err)
			}
			p.stop()
			sw := w.watch(t)

			crashed := func() (crashed any) {
				p := h.start(map[string]string{fp: "panic"})
				defer p.stop()
				defer func() { crashed = recover() }()
				if strings.HasPrefix(fp, "rollback.") {
					// Make the first attempt roll back: the key probe refuses.
					h.note(os.WriteFile(filepath.Join(h.dir, "probe.sh"), []byte("#!/bin/sh\nexit 1\n"), 0o700))
				}
				out := h.rotate(p, "kube")
				t.Logf("the rotation ended without reaching the failpoint: %s at %s (%v)", out.Result, out.Step, out.Err)
				return nil
			}()
			if crashed != "failpoint "+fp {
				t.Fatalf("the engine did not crash at %s: %v", fp, crashed)
			}
			h.note(os.WriteFile(filepath.Join(h.dir, "probe.sh"), []byte("#!/bin/sh\nset -eu\nprintf '%s' \"$REKEY_KEY_API_KEY\" | \"$(dirname \"$0\")/keyservice.sh\" auth -\n"), 0o700))

			p = h.start(nil)
			if err := p.e.Reconcile(h.ctx); err != nil {
				t.Fatal(err)
			}
			out := h.rotate(p, "kube")
			if out.Result != rotator.OutcomeDone {
				t.Fatalf("rotation after recovery: %s at %s (%v)", out.Result, out.Step, out.Err)
			}
			st := h.state(p, "kube")
			served, err := w.served()
			if err != nil {
				t.Fatal(err)
			}
			if !w.accept(served) {
				t.Fatal("at the end the Secret serves a refused key")
			}
			if keys := w.keys(t); len(keys) != 1 || filepath.Base(keys[0]) != st.CurrentKeyID+".key" {
				t.Errorf("at the end the key service holds %d keys, want exactly the journal's current key", len(keys))
			}
			code, body, _ := api.Do("GET", "/api/v1/namespaces/"+ns+"/secrets/app-rekey-previous", api.AdminToken, nil)
			var comp struct {
				Data map[string]string `json:"data"`
			}
			_ = json.Unmarshal(body, &comp)
			if code == 200 && len(comp.Data) > 0 {
				t.Error("the companion Secret still holds a previous value after the rotation ended")
			}
			if sw.reads.Load() == 0 {
				t.Fatal("the watcher never read the Secret")
			}
			if n := sw.refused.Load(); n > 0 {
				sw.mu.Lock()
				t.Errorf("%d of %d reads served a refused key; first %s", n, sw.reads.Load(), sw.first)
				sw.mu.Unlock()
			}
			t.Logf("%d reads of the Secret, 0 refused", sw.reads.Load())
		})
	}
}
