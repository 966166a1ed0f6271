// Package exec implements the exec notifier: a command that receives the
// notification as JSON on its standard input (to send mail, page someone,
// post to a chat with a vendor CLI).
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
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

// Notifier runs a command per notification.
type Notifier struct {
	argv    []string
	env     map[string]string
	timeout time.Duration
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
	n := &Notifier{argv: command.Resolve(cfg.Command, env.Path), env: cfg.Env, timeout: DefaultTimeout}
	if cfg.Timeout != nil {
		d, err := duration.Parse(*cfg.Timeout)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid timeout", Detail: err.Error() + ".", Subject: at(cfg.TimeoutRange).Ptr()})
		case d <= 0:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid timeout", Detail: "timeout must be positive, such as \"30s\".", Subject: at(cfg.TimeoutRange).Ptr()})
		default:
			n.timeout = d
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
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	name := filepath.Base(n.argv[0])
	cmd := osexec.CommandContext(ctx, n.argv[0], n.argv[1:]...)
	cmd.Stdin = bytes.NewReader(append(payload, '\n'))
	cmd.Env = n.environ(m)
	var stderr tail
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	prepare(cmd)
	err = cmd.Run()
	if errors.Is(err, osexec.ErrWaitDelay) {
		err = nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("notify command %q did not finish within %s and was killed: %w", name, n.timeout, ctx.Err())
	}
	var exitErr *osexec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exitErr):
		msg := fmt.Sprintf("notify command %q exited with status %d", name, exitErr.ExitCode())
		if s := stderr.String(); s != "" {
			msg += "; stderr: " + s
		}
		return errors.New(msg)
	default:
		return plugin.Permanent(fmt.Errorf("starting notify command %q: %w; check that it exists and is executable by rekey's user", name, err))
	}
}

// environ is a minimal environment: PATH, HOME, the configured variables
// and the REKEY_ variables of the message. NOTIFY_SOCKET and the rest of
// the daemon's environment are not passed on.
func (n *Notifier) environ(m notifiers.Message) []string {
	vars := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")}
	if vars["PATH"] == "" {
		vars["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if vars["HOME"] == "" {
		vars["HOME"] = "/"
	}
	for _, k := range []string{"SYSTEMROOT", "COMSPEC", "PATHEXT", "TEMP", "TMP"} {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for k, v := range n.env {
		vars[k] = v
	}
	vars["REKEY_EVENT"] = m.Event
	vars["REKEY_POLICY"] = m.Policy
	vars["REKEY_ROTATION_ID"] = m.RotationID
	vars["REKEY_DELIVERY_ID"] = m.ID
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// tail keeps the last stderrTail bytes written, for a one-line message.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTail; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	s := strings.ToValidUTF8(string(t.buf), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
