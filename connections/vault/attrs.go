package vault

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare); the defaults
// would give the same, the declaration makes them explicit.
func init() {
	plugin.Declare("connection", Kind, plugin.Attrs{
		"token_file":       plugin.SecretFile,
		"role_id_file":     plugin.SecretFile,
		"secret_id_file":   plugin.SecretFile,
		"client_key_file":  plugin.SecretFile,
		"ca_file":          plugin.File,
		"client_cert_file": plugin.File,
	})
}
