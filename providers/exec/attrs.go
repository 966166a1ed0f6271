package exec

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare): each operation is
// a command that must exist and be safe to run.
func init() {
	plugin.Declare("provider", "exec", plugin.Attrs{
		"create":     plugin.Command,
		"delete":     plugin.Command,
		"list":       plugin.Command,
		"deactivate": plugin.Command,
		"activate":   plugin.Command,
		"last_used":  plugin.Command,
	})
}
