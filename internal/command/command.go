// Package command runs the external commands of the exec plugins (the exec
// provider, probe and reload hook) the same way: an argv list without a
// shell, a minimal environment, empty stdin, a timeout that kills the whole
// process group, bounded output, and errors that carry the exit status and
// the tail of stderr but never a secret value.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/plugin"
)

// Default limits of a Command.
const (
	DefaultStdoutLimit = 1 << 20
	DefaultStderrLimit = 4 << 10
	// waitDelay bounds how long Wait keeps reading the output pipes after
	// the process exited or was killed, when a grandchild holds them open.
	waitDelay = 2 * time.Second
)

// withheld replaces stderr when it contains a value that must not leak.
const withheld = "[stderr withheld: it contained a secret value]"

// withheldStdout replaces stderr when the command printed anything on a
// secret-bearing stdout: stderr could repeat it in any form (a copy, a
// fragment, base64, reversed), which no filter can rule out.
const withheldStdout = "[stderr withheld: the command printed on stdout, which may carry a secret, and stderr could repeat it in any form]"

// Command is a configured external command.
type Command struct {
	// Argv is the program and its arguments; Argv[0] is an absolute path
	// or a name looked up in PATH (see Resolve).
	Argv []string
	// Env holds extra, non-secret environment variables from the
	// configuration. It may override PATH and HOME.
	Env map[string]string
	// Dir is the working directory; empty means rekey's own.
	Dir string
	// Timeout bounds one run; zero means no limit besides the context.
	Timeout time.Duration
	// StdoutLimit is the most stdout a run may print; more is an error.
	// Zero means DefaultStdoutLimit.
	StdoutLimit int
	// StderrLimit is how much of the end of stderr an error carries.
	// Zero means DefaultStderrLimit.
	StderrLimit int
	// SecretStdout says that stdout may carry a secret (the exec
	// provider's create prints the new key). On failure, stdout is
	// discarded and stderr is withheld whenever anything was printed on
	// stdout: what the command printed is secret-bearing as a whole, and
	// stderr could repeat it in a form no filter recognises.
	SecretStdout bool
	// DiscardStdout throws stdout away unread (and unlimited): for
	// commands whose output means nothing to rekey, such as notifiers.
	DiscardStdout bool
}

// Name is the short name of the program, for messages.
func (c *Command) Name() string {
	if len(c.Argv) == 0 {
		return ""
	}
	return filepath.Base(c.Argv[0])
}

// ExitError reports a command that ran and failed.
type ExitError struct {
	// Name is the program's short name.
	Name string
	// Code is the exit status, or -1 when the process was killed by a
	// signal.
	Code int
	// Stderr is the end of what the command printed on stderr, cleaned
	// of control characters, or a marker when it contained a secret.
	Stderr string
	// Truncated is true when Stderr is only the end of a longer output.
	Truncated bool
	// StdoutBytes is how much the command printed on stdout before it
	// failed, when stdout may carry a secret; the output is discarded.
	StdoutBytes int
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Code < 0 {
		fmt.Fprintf(&b, "command %q was killed by a signal", e.Name)
	} else {
		fmt.Fprintf(&b, "command %q exited with status %d", e.Name, e.Code)
	}
	if e.StdoutBytes > 0 {
		fmt.Fprintf(&b, " after printing %d bytes on stdout (discarded: they may carry a secret, and the command may have taken effect)", e.StdoutBytes)
	}
	switch {
	case e.Stderr == "":
		b.WriteString(" and printed nothing on stderr")
	case e.Truncated:
		b.WriteString("; end of stderr: ...")
		b.WriteString(e.Stderr)
	default:
		b.WriteString("; stderr: ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// ErrTimeout is wrapped by the error of a run that exceeded its timeout.
var ErrTimeout = errors.New("command timed out")

// Run runs the command with env appended to its environment (NAME=value
// entries: the REKEY_* variables of the caller) and returns its stdout.
// Any value in redact that appears on stderr makes the error withhold
// stderr entirely; pass the secret values given in env.
func (c *Command) Run(ctx context.Context, env []string, redact ...string) ([]byte, error) {
	return c.RunInput(ctx, nil, env, redact...)
}

// RunInput is Run with stdin as the command's standard input (empty when
// nil).
func (c *Command) RunInput(ctx context.Context, stdin []byte, env []string, redact ...string) ([]byte, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, plugin.Permanent(errors.New("no command configured"))
	}
	runCtx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	stdoutLimit := c.StdoutLimit
	if stdoutLimit <= 0 {
		stdoutLimit = DefaultStdoutLimit
	}
	stderrLimit := c.StderrLimit
	if stderrLimit <= 0 {
		stderrLimit = DefaultStderrLimit
	}
	longest := 0
	for _, r := range redact {
		longest = max(longest, len(r))
	}

	cmd := exec.CommandContext(runCtx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.environ(env)
	cmd.Dir = c.Dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stdout := &limitBuffer{limit: stdoutLimit}
	stderr := &tailBuffer{limit: stderrLimit + longest}
	if !c.DiscardStdout {
		cmd.Stdout = stdout
	}
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	prepare(cmd)

	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("running command %q: %w", c.Name(), ctxErr)
	}
	if runCtx.Err() != nil {
		return nil, fmt.Errorf("running command %q: %w: it did not finish within %s and was killed; raise its timeout or find out why it hangs", c.Name(), ErrTimeout, c.Timeout)
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			ee := &ExitError{Name: c.Name(), Code: exitErr.ExitCode()}
			ee.Stderr, ee.Truncated = stderr.text(stderrLimit, redact)
			if c.SecretStdout {
				ee.StdoutBytes = stdout.buf.Len()
				if stdout.buf.Len() > 0 {
					ee.Stderr, ee.Truncated = withheldStdout, false
				}
			}
			return nil, ee
		}
		return nil, plugin.Permanent(fmt.Errorf("starting command %q: %w; check that the program exists and is executable by rekey's user", c.Name(), err))
	}
	if stdout.overflow {
		return nil, plugin.Permanent(fmt.Errorf("command %q printed more than %d bytes on stdout", c.Name(), stdoutLimit))
	}
	return stdout.buf.Bytes(), nil
}

// environ builds the minimal environment: PATH, HOME (and on Windows the
// variables programs cannot start without), the configured variables, then
// the caller's.
func (c *Command) environ(extra []string) []string {
	m := map[string]string{
		"PATH": os.Getenv("PATH"),
		"HOME": os.Getenv("HOME"),
	}
	if m["PATH"] == "" {
		m["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if m["HOME"] == "" {
		m["HOME"] = "/"
	}
	if runtime.GOOS == "windows" {
		for _, k := range []string{"SYSTEMROOT", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE"} {
			if v, ok := os.LookupEnv(k); ok {
				m[k] = v
			}
		}
	}
	for k, v := range c.Env {
		m[k] = v
	}
	env := make([]string, 0, len(m)+len(extra))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return append(env, extra...)
}

// limitBuffer keeps up to limit bytes and notes whether more came. It
// never fails a write, so the child never blocks on a full pipe.
type limitBuffer struct {
	buf      bytes.Buffer
	limit    int
	overflow bool
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.buf.Len()
	if len(p) > room {
		b.overflow = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// tailBuffer keeps the last limit bytes written.
type tailBuffer struct {
	buf     []byte
	limit   int
	dropped bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.dropped = true
	}
	return len(p), nil
}

// text returns the last n bytes kept, cleaned for a single-line message,
// or a marker when any value in redact occurs in what was kept. The buffer
// keeps more than n bytes (n plus the longest redacted value), so that a
// value cut by truncation is still found.
func (b *tailBuffer) text(n int, redact []string) (string, bool) {
	for _, r := range redact {
		if r != "" && bytes.Contains(b.buf, []byte(r)) {
			return withheld, false
		}
	}
	kept := b.buf
	truncated := b.dropped
	if len(kept) > n {
		kept = kept[len(kept)-n:]
		truncated = true
	}
	s := strings.ToValidUTF8(string(kept), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s), truncated
}
