package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

// vaultEnv is a Vault dev server (KV v2 mounted at secret/).
type vaultEnv struct {
	srv *vaulttest.Server
}

func startVault(t testing.TB) *vaultEnv {
	t.Helper()
	return &vaultEnv{srv: vaulttest.Start(t)}
}

// block declares `vault "main"` for h. With auth "", rekey reads the root
// token from a token file in h's directory.
func (v *vaultEnv) block(h *harness, auth string) string {
	h.secret("the Vault root token", v.srv.RootToken)
	if auth == "" {
		auth = fmt.Sprintf("auth \"token_file\" {\n    path = %q\n  }", h.writeFile("vault-token", v.srv.RootToken+"\n"))
	}
	return fmt.Sprintf("vault \"main\" {\n  address = %q\n  %s\n}\n", v.srv.Addr, auth)
}

func (v *vaultEnv) kv() *api.KVv2 { return v.srv.Client.KVv2("secret") }

// put writes data at secret/<path> as a new version.
func (v *vaultEnv) put(t testing.TB, path string, data map[string]string) int {
	t.Helper()
	m := map[string]any{}
	for k, x := range data {
		m[k] = x
	}
	s, err := v.kv().Put(context.Background(), path, m)
	if err != nil {
		t.Fatalf("writing secret/%s: %v", path, err)
	}
	return s.VersionMetadata.Version
}

// get reads a version of secret/<path> (0: the current one) and returns
// its data and version number.
func (v *vaultEnv) get(ctx context.Context, h *harness, path string, version int) (map[string]string, int, error) {
	var s *api.KVSecret
	var err error
	if version == 0 {
		s, err = v.kv().Get(ctx, path)
	} else {
		s, err = v.kv().GetVersion(ctx, path, version)
	}
	if err != nil {
		return nil, 0, err
	}
	out := map[string]string{}
	for k, x := range s.Data {
		str, _ := x.(string)
		out[k] = str
		if !notSecretFields[k] {
			h.secret("a value read from Vault KV ("+k+")", str)
		}
	}
	return out, s.VersionMetadata.Version, nil
}

// notSecretFields are the KV fields whose values rekey may print (key ids
// and connection details); every other field read is registered as a secret.
var notSecretFields = map[string]bool{
	"access_key_id": true, "role_id": true, "username": true,
	"host": true, "port": true, "dbname": true, "engine": true,
}

// metadata returns the path's KV v2 metadata.
func (v *vaultEnv) metadata(t testing.TB, path string) *api.KVMetadata {
	t.Helper()
	m, err := v.kv().GetMetadata(context.Background(), path)
	if err != nil {
		t.Fatalf("reading metadata of secret/%s: %v", path, err)
	}
	return m
}
