package webhook

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare).
func init() {
	plugin.Declare("notify", "webhook", plugin.Attrs{
		"signing_key_file": plugin.SecretFile,
		"ca_file":          plugin.File,
	})
}
