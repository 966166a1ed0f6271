package command

import (
	"context"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
)

// HookStderrLimit is how much of the end of stderr a failed hook reports.
const HookStderrLimit = 1 << 10

// hookConfig is the block body shared by the exec probe and the exec
// reload hook.
type hookConfig struct {
	Command         []string          `hcl:"command"`
	Env             map[string]string `hcl:"env,optional"`
	PassKey         bool              `hcl:"pass_key,optional"`
	RunTimeout      *string           `hcl:"run_timeout,optional"`
	CommandRange    hcl.Range         `hcl:"command,attr_range"`
	EnvRange        hcl.Range         `hcl:"env,attr_range"`
	RunTimeoutRange hcl.Range         `hcl:"run_timeout,attr_range"`
}

// Hook is a command run with a key: the exec probe and the exec reload
// hook. The key's fields reach the command only through its environment,
// and only when PassKey is set.
type Hook struct {
	Cmd     *Command
	PassKey bool
	policy  string
}

// DecodeHook decodes the body of an exec probe or reload block: command,
// env, pass_key and run_timeout (default defaultTimeout).
func DecodeHook(env *plugin.Env, body hcl.Body, defaultTimeout time.Duration) (*Hook, hcl.Diagnostics) {
	var cfg hookConfig
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
	diags = append(diags, CheckArgv("command", cfg.Command, true, at(cfg.CommandRange))...)
	diags = append(diags, CheckEnv(cfg.Env, at(cfg.EnvRange))...)
	timeout := defaultTimeout
	if cfg.RunTimeout != nil {
		d, err := duration.Parse(*cfg.RunTimeout)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid run_timeout", Detail: err.Error() + ".", Subject: at(cfg.RunTimeoutRange).Ptr()})
		case d <= 0:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid run_timeout", Detail: "run_timeout must be positive, such as \"30s\".", Subject: at(cfg.RunTimeoutRange).Ptr()})
		}
		timeout = d
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return &Hook{
		Cmd: &Command{
			Argv:        Resolve(cfg.Command, env.Path),
			Env:         cfg.Env,
			Timeout:     timeout,
			StderrLimit: HookStderrLimit,
		},
		PassKey: cfg.PassKey,
		policy:  env.Policy,
	}, diags
}

// Run runs the hook. The environment holds REKEY_POLICY, the entries of
// rot when it is not nil (REKEY_ROTATION_ID, REKEY_GENERATION) and, with
// PassKey, the key (see KeyEnv).
func (h *Hook) Run(ctx context.Context, rot *plugin.Rotation, key plugin.Key) error {
	policy := h.policy
	var env []string
	if rot != nil {
		if rot.Policy != "" {
			policy = rot.Policy
		}
		env = append(env, "REKEY_ROTATION_ID="+rot.ID, "REKEY_GENERATION="+strconv.FormatInt(rot.Generation, 10))
	}
	env = append(env, "REKEY_POLICY="+policy)
	var redact []string
	if h.PassKey {
		keyEnv, values, err := KeyEnv(key)
		if err != nil {
			return err
		}
		env = append(env, keyEnv...)
		redact = values
	} else {
		for _, v := range key.Value {
			if !v.IsZero() {
				redact = append(redact, v.Reveal())
			}
		}
	}
	_, err := h.Cmd.Run(ctx, env, redact...)
	return err
}
