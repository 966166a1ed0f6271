// Package policies loads rekey's HCL configuration: daemon settings, named
// connections and policy blocks. Loading yields typed, validated policies
// holding configured plugin instances, or diagnostics that name
// file:line:col and say what to do.
package policies

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/sinks"
)

// Config is a loaded configuration: daemon settings and policies.
type Config struct {
	// Files are the files read, in load order.
	Files []string
	// StateDir holds the journal and its lock.
	StateDir string
	// DisableMlock turns off locking the daemon's memory (mlockall), for
	// hosts where it is not permitted; secrets may then reach swap.
	DisableMlock bool
	// Log holds logging settings.
	Log LogSettings
	// Server is the optional listener for metrics, health and control.
	Server *Server
	// Journal is the shared journal (journal "etcd"), nil for the
	// embedded bbolt journal in StateDir.
	Journal *JournalSettings
	// Connections are the named connections (vault "main", aws "prod").
	Connections *plugin.Connections
	// ConnectionLabels are the labels of the connections, by "KIND.NAME".
	ConnectionLabels map[string]Labels
	// Guards are the label names of the guard blocks: a policy may only
	// use connections with the same value of each.
	Guards []string
	// Policies in load order (files in lexical order, blocks in file order).
	Policies []*Policy
}

// LogSettings configure the daemon's logging.
type LogSettings struct {
	// Level is a zerolog level name; default "info".
	Level string
	// Format is "auto" (console on a terminal, JSON otherwise), "json" or
	// "console".
	Format string
}

// Server configures the daemon's HTTP listener.
type Server struct {
	Listen string
}

// Policy is one credential kept fresh.
type Policy struct {
	Name     string
	DefRange hcl.Range

	Schedule Schedule
	Provider ProviderBlock
	Sinks    []SinkBlock
	Probes   []ProbeBlock
	Reloads  []ReloadBlock
	Revoke   Revoke
	// Notify are the policy's notifiers, in file order.
	Notify []NotifyBlock

	// Labels are the policy's labels, for selectors and guards.
	Labels Labels
	// RotateBlind is true when the policy explicitly accepts rotating with
	// no probe (`rotate_blind = true`); validate warns about it.
	RotateBlind bool
	// StepTimeout bounds the retries of one step's external calls.
	StepTimeout time.Duration
	// MaxFailures is the failure budget: after this many consecutive failed
	// attempts the policy is stuck until an operator rotates it by hand.
	MaxFailures int
	// ConfigPath is the configuration the policy was loaded from, when it
	// is not DefaultPath: messages that tell an operator to run rekey
	// rotate name it with -config.
	ConfigPath string
}

// DefaultPath is where rekey reads its configuration when neither -config
// nor $REKEY_CONFIG says otherwise.
const DefaultPath = "/etc/rekey"

// RotateCommand is the command an operator runs to rotate (or release)
// the policy by hand: rekey rotate, with -config when the policy was not
// loaded from DefaultPath.
func (p *Policy) RotateCommand() string { return RotateCommand(p.ConfigPath, p.Name) }

// RotateCommand is "rekey rotate NAME", with -config PATH (shell-quoted
// when needed) unless path is empty or DefaultPath.
func RotateCommand(path, name string) string {
	if path == "" || path == DefaultPath {
		return "rekey rotate " + name
	}
	if strings.ContainsAny(path, " \t\n'\"$`\\;&|<>()*?[]#~!{}") {
		path = "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
	}
	return "rekey rotate -config " + path + " " + name
}

// Schedule says when a policy is due.
type Schedule struct {
	// Every: rotate when the current key is this old. Zero if unset.
	Every time.Duration
	// Cron: rotate at these times (standard 5-field syntax or @daily...).
	// Nil if unset.
	Cron CronSchedule
	// CronExpr is the source text of Cron, for display.
	CronExpr string
	// Window restricts when rotations may start. Nil means any time.
	Window *Window
	// Jitter spreads due times by up to this much, deterministically per
	// policy and generation.
	Jitter time.Duration
	// MaxAge is the hard limit: a key older than this is rotated even
	// outside the window, and reported as overdue. Zero if unset.
	MaxAge time.Duration
	// ExpiryLead: a key that expires at its provider is due this long
	// before it expires (`expiry_lead`, default 25% of its lifetime);
	// like MaxAge, this overrides the window.
	ExpiryLead ExpiryLead
	// KeyTTL is the lifetime new keys are created with, where the provider
	// lets rekey choose (`key_ttl`). Zero: the provider's default.
	KeyTTL time.Duration
	// ExpiryNotify are the times before expiry at which an expiring event
	// is sent while rotations fail (`expiry_notify`), longest first.
	ExpiryNotify []time.Duration
}

// CronSchedule is a parsed cron expression.
type CronSchedule interface {
	// Next returns the next activation time strictly after t.
	Next(t time.Time) time.Time
}

// Window is a recurring weekly time window such as
// "Mon-Thu 09:00-16:00 Europe/Berlin".
type Window struct {
	// Expr is the source text.
	Expr string
	// Days has true for each allowed weekday (index time.Weekday).
	Days [7]bool
	// Start and End are offsets from local midnight; End may be less than
	// Start for a window that spans midnight (it then ends the next day).
	Start, End time.Duration
	// Location is the window's time zone.
	Location *time.Location
}

// ProviderBlock is a policy's configured provider.
type ProviderBlock struct {
	Kind     string
	DefRange hcl.Range
	Provider providers.Provider
}

// SinkBlock is one of a policy's configured sinks.
type SinkBlock struct {
	Kind     string
	DefRange hcl.Range
	// Fields maps the field names written to the sink to the key's field
	// names (`fields = { AWS_ACCESS_KEY_ID = "access_key_id" }`). Nil means
	// all fields under their own names.
	Fields map[string]string
	Sink   sinks.Sink
}

// ProbeBlock is one of a policy's configured probes with the common retry
// settings.
type ProbeBlock struct {
	Kind     string
	DefRange hcl.Range
	Target   probes.Target
	// Timeout bounds the retries (default 2m).
	Timeout time.Duration
	// Interval is the first retry delay; it backs off exponentially up to
	// 30s (default 1s).
	Interval time.Duration
	// Successes is the number of consecutive passes required (default 1).
	Successes int
	Probe     probes.Probe
}

// ReloadBlock is one of a policy's reload hooks.
type ReloadBlock struct {
	Kind     string
	DefRange hcl.Range
	// Timeout bounds one run of the hook (default 1m).
	Timeout  time.Duration
	Reloader reloaders.Reloader
}

// NotifyBlock is one of a policy's notifiers with the events it wants.
type NotifyBlock struct {
	Kind     string
	DefRange hcl.Range
	// On selects the events sent (default notifiers.DefaultEvents).
	On       notifiers.Filter
	Notifier notifiers.Notifier
}

// Revoke holds the rules for retiring the old key after commit.
type Revoke struct {
	// After is the grace period after commit before the old key is
	// touched.
	After time.Duration
	// WaitUnused waits, where the provider can tell, until the old key has
	// not been used since commit.
	WaitUnused bool
	// Soak is how long the old key stays deactivated (dependent probes
	// keep running) before deletion; zero deletes at once.
	Soak time.Duration
	// Watch is how long dependent probes keep running after revocation.
	// Revocation cannot be undone, so a failure then raises the loudest
	// alert (a watch_failed event, the rekey_policy_alert metric, status).
	Watch time.Duration
}
