//go:build unix

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/testenv/dbtest"
)

// TestPostgresThroughVaultKV rotates alternating PostgreSQL roles into
// Vault KV (next to the file the dependent reads), with rekey's admin
// password itself read from Vault KV. After each rotation, the credential
// Vault serves is the journal's current key and logs in.
func TestPostgresThroughVaultKV(t *testing.T) {
	t.Parallel()
	v := startVault(t)
	pg := dbtest.StartPostgres(t)
	h := newHarness(t)
	w := newPGWorld(h, pg, "vkv", true)
	v.put(t, "db-admin", map[string]string{"password": pg.AdminPassword})
	w.adminBlock = fmt.Sprintf("admin {\n      username         = %q\n      vault_connection = vault.main\n      vault_path       = \"secret/data/db-admin\"\n    }", dbtest.PGAdmin)
	pol := w.policy("db", w.provider(pg.Host, pg.Port, ""), "10s", pgRevoke)
	pol = strings.Replace(pol, "  probe \"postgres\" {", "  sink \"vault_kv\" {\n    connection = vault.main\n    mount      = \"secret\"\n    path       = \"vkv/db\"\n  }\n\n  probe \"postgres\" {", 1)
	h.src = "state_dir = \"state\"\n" + v.block(h, "") + pol
	w.dep.run()
	p := h.start(nil)
	for i := 1; i <= 2; i++ {
		out := h.rotate(p, "db")
		if out.Result != "done" {
			t.Fatalf("rotation %d: %s at %s (%v)", i, out.Result, out.Step, out.Err)
		}
		st := h.state(p, "db")
		w.final(st)
		data, _, err := v.get(h.ctx, h, "vkv/db", 0)
		if err != nil {
			t.Fatalf("reading Vault KV: %v", err)
		}
		if data["username"]+"@" != st.CurrentKeyID[:len(data["username"])+1] {
			t.Errorf("Vault KV serves %s, not the current key %s", data["username"], st.CurrentKeyID)
		}
		if err := pg.Login(h.ctx, data["username"], data["password"]); err != nil {
			t.Errorf("the credential Vault KV serves does not log in: %v", err)
		}
		for _, f := range []string{"host", "port", "dbname", "uri", "engine"} {
			if data[f] == "" {
				t.Errorf("Vault KV has no %s field", f)
			}
		}
	}
	w.dep.stop()
	w.dep.summary(t)
	if n, first := w.dep.authFailures(); n > 0 {
		t.Errorf("the dependent was refused %d times (first: %s)", n, first)
	}
}
