// Package exec implements the exec reload hook: a command run after the
// new key was promoted, so that dependents pick it up (systemctl reload,
// a vendor CLI, a script).
package exec

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/reloaders"
)

func init() { reloaders.Register("exec", New) }

// DefaultRunTimeout bounds one run of the command when run_timeout is unset.
const DefaultRunTimeout = time.Minute

// Reloader runs a command once per reload.
type Reloader struct {
	hook *command.Hook
}

var _ reloaders.Reloader = (*Reloader)(nil)

// New decodes an exec reload block.
func New(env *plugin.Env, body hcl.Body) (reloaders.Reloader, hcl.Diagnostics) {
	h, diags := command.DecodeHook(env, body, DefaultRunTimeout)
	if diags.HasErrors() {
		return nil, diags
	}
	return &Reloader{hook: h}, diags
}

// Reload runs the command; exit status 0 is success. The engine may run
// it again after a crash, so the command must be safe to repeat.
func (r *Reloader) Reload(ctx context.Context, rot plugin.Rotation, key plugin.Key) error {
	if err := r.hook.Run(ctx, &rot, key); err != nil {
		return fmt.Errorf("reload command failed: %w", err)
	}
	return nil
}
