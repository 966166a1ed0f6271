// Package exec implements the exec notifier: a command that receives the
// notification as JSON on its standard input (to send mail, page someone,
// post to a chat with a vendor CLI).
package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
)

func init() { notifiers.Register("exec", New) }

// DefaultTimeout bounds one run when timeout is unset.
const DefaultTimeout = 30 * time.Second

// stderrTail is how much of the end of stderr an error reports.
const stderrTail = 512

type config struct {
	Command []string          `hcl:"command"`
	Env     map[string]string `hcl:"env,optional"`
	Timeout *string           `hcl:"timeout,optional"`

	CommandRange hcl.Range `hcl:"command,attr_range"`
	EnvRange     hcl.Range `hcl:"env,attr_range"`
	TimeoutRange hcl.Range `hcl:"timeout,attr_range"`
}

// Notifier runs a command per notification through the shared command
// runner (internal/command): no shell, a minimal environment, a timeout
// that kills the process group, and the cleaned tail of stderr in errors.
type Notifier struct {
	cmd command.Command
}

var _ notifiers.Notifier = (*Notifier)(nil)

// New decodes an exec notify block.
func New(env *plugin.Env, body hcl.Body) (notifiers.Notifier, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := func(r hcl.Range) hcl.Range {
		if r.Filename == "" {
			return env.DefRange
		}
		return r
	}
	diags = append(diags, command.CheckArgv("command", cfg.Command, true, at(cfg.CommandRange))...)
	diags = append(diags, command.CheckEnv(cfg.Env, at(cfg.EnvRange))...)
	n := &Notifier{cmd: command.Command{
		Argv:          command.Resolve(cfg.Command, env.Path),
		Env:           cfg.Env,
		Timeout:       DefaultTimeout,
		StderrLimit:   stderrTail,
		DiscardStdout: true,
	}}
	if cfg.Timeout != nil {
		d, err := duration.Parse(*cfg.Timeout)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid timeout", Detail: err.Error() + ".", Subject: at(cfg.TimeoutRange).Ptr()})
		case d <= 0:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid timeout", Detail: "timeout must be positive, such as \"30s\".", Subject: at(cfg.TimeoutRange).Ptr()})
		default:
			n.cmd.Timeout = d
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return n, diags
}

// Notify runs the command once with m as JSON on stdin and REKEY_EVENT,
// REKEY_POLICY, REKEY_ROTATION_ID and REKEY_DELIVERY_ID in its
// environment. Exit status 0 is success; another status is retried; a
// program that cannot be started is a permanent error.
func (n *Notifier) Notify(ctx context.Context, m notifiers.Message) error {
	payload, err := json.Marshal(m)
	if err != nil {
		return plugin.Permanent(fmt.Errorf("encoding notification: %w", err))
	}
	_, err = n.cmd.RunInput(ctx, append(payload, '\n'), []string{
		"REKEY_EVENT=" + m.Event,
		"REKEY_POLICY=" + m.Policy,
		"REKEY_ROTATION_ID=" + m.RotationID,
		"REKEY_DELIVERY_ID=" + m.ID,
	})
	if err != nil {
		return fmt.Errorf("notifying: %w", err)
	}
	return nil
}
