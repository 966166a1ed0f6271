package file

import "github.com/rekeyhq/rekey/plugin"

// The loader's checks read these roles (plugin.Declare): path is written,
// so it must not lie in the state directory.
func init() {
	plugin.Declare("sink", "file", plugin.Attrs{"path": plugin.WrittenFile})
}
