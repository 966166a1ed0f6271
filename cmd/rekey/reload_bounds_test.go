package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadRefusesHostileFiles: the daemon's reload loads through the same
// Loader.Load as validate, so a file nested 100,000 levels deep, a
// 100,000-element list or a 10 MB name is refused with a short diagnostic
// instead of crashing the running daemon (issue 8).
func TestReloadRefusesHostileFiles(t *testing.T) {
	for name, src := range map[string]string{
		"brackets": "x = " + strings.Repeat("[", 100000) + "\n",
		"calls":    "x = " + strings.Repeat("f(", 100000) + "\n",
		"list":     "x = [" + strings.Repeat("1,", 100000) + "]\n",
		"name":     `policy "` + strings.Repeat("n", 10<<20) + `" {}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rekey.hcl"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := reloadConfig(dir)
			if cfg != nil || err == nil {
				t.Fatal("reload accepted the file")
			}
			if len(err.Error()) > 2000 {
				t.Errorf("a %d-byte error", len(err.Error()))
			}
		})
	}
}
