package awssm

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare): secret_id names
// the secret, it is not one.
func init() {
	plugin.Declare("sink", Kind, plugin.Attrs{"secret_id": plugin.NotSensitive})
}
