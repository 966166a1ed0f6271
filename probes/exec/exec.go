// Package exec implements the exec probe: a command that exits 0 when the
// check passes. It can test the new key itself (with pass_key = true the
// key reaches the command in its environment) or a dependent.
package exec

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
)

func init() { probes.Register("exec", New) }

// DefaultRunTimeout bounds one run of the command when run_timeout is unset.
const DefaultRunTimeout = 30 * time.Second

// Probe runs a command once per check.
type Probe struct {
	hook *command.Hook
}

var _ probes.Probe = (*Probe)(nil)

// New decodes an exec probe block (without the common probe attributes).
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	h, diags := command.DecodeHook(env, body, DefaultRunTimeout)
	if diags.HasErrors() {
		return nil, diags
	}
	return &Probe{hook: h}, diags
}

// Check runs the command; exit status 0 passes.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	if err := p.hook.Run(ctx, nil, key); err != nil {
		return fmt.Errorf("probe command failed: %w", err)
	}
	return nil
}
