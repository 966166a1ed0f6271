package kubesecret

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare): data maps data
// keys to key field names (no values); the kubeconfig and token file are
// credentials, ca_file is not secret.
func init() {
	plugin.Declare("sink", Kind, plugin.Attrs{
		"data":       plugin.NotSensitive,
		"kubeconfig": plugin.SecretFile,
		"token_file": plugin.SecretFile,
		"ca_file":    plugin.File,
	})
}
