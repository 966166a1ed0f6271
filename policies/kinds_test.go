package policies

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/sinks"
)

// Test-only plugin kinds that exercise the loader's generic logic. They
// decode strictly with plugin.Env.Decode like the real kinds do.

func init() {
	plugin.ConnectionKinds.Register("testconn", newTestConn)
	providers.Register("test", newTestProvider)
	sinks.Register("test", newTestSink)
	probes.Register("test", newTestProbe)
	probes.Register("test_key", newTestKeyProbe)
	reloaders.Register("test", newTestReloader)
	notifiers.Register("test", newTestNotifier)
	plugin.Declare("connection", "testconn", plugin.Attrs{"connect_string": plugin.Sensitive})
	plugin.Declare("provider", "test", plugin.Attrs{"connect_string": plugin.Sensitive})
	plugin.Declare("sink", "test", plugin.Attrs{"secret_id": plugin.NotSensitive, "path": plugin.WrittenFile})
}

type testConn struct {
	Name      string
	Address   string
	TokenFile string
}

func newTestConn(env *plugin.Env, name string, body hcl.Body) (any, hcl.Diagnostics) {
	var cfg struct {
		Address   string `hcl:"address"`
		TokenFile string `hcl:"token_file,optional"`
		Password  string `hcl:"password,optional"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	return &testConn{Name: name, Address: cfg.Address, TokenFile: env.Path(cfg.TokenFile)}, nil
}

type testProvider struct {
	name   string
	conn   *testConn
	secret string
	env    *plugin.Env
}

var _ providers.Provider = (*testProvider)(nil)

func newTestProvider(env *plugin.Env, body hcl.Body) (providers.Provider, hcl.Diagnostics) {
	var cfg struct {
		Name       string            `hcl:"name"`
		Connection hcl.Expression    `hcl:"connection,optional"`
		Secret     string            `hcl:"secret,optional"`
		Tags       map[string]string `hcl:"tags,optional"`
		Deactivate bool              `hcl:"deactivate,optional"`
		Single     bool              `hcl:"single,optional"`
		KeyTTLDays bool              `hcl:"key_ttl_days,optional"`
		Options    []struct {
			Name  string `hcl:"name,label"`
			Value string `hcl:"value"`
		} `hcl:"option,block"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	p := &testProvider{name: cfg.Name, secret: cfg.Secret, env: env}
	if v, _ := cfg.Connection.Value(nil); !v.IsNull() || len(cfg.Connection.Variables()) > 0 {
		c, diags := env.Connection(cfg.Connection, "testconn")
		if diags.HasErrors() {
			return nil, diags
		}
		p.conn = c.(*testConn)
	}
	if cfg.Deactivate {
		return deactivatingTestProvider{p}, nil
	}
	if cfg.Single {
		return singleTestProvider{p}, nil
	}
	if cfg.KeyTTLDays {
		return daysTestProvider{p}, nil
	}
	return p, nil
}

// daysTestProvider takes key_ttl in whole days only, as the mysql
// provider does (key_ttl_days = true).
type daysTestProvider struct{ *testProvider }

var _ providers.KeyTTLChecker = daysTestProvider{}

func (daysTestProvider) AcceptsKeyTTL() bool { return true }

func (daysTestProvider) CheckKeyTTL(d time.Duration) error {
	if d%(24*time.Hour) != 0 {
		return errors.New("key_ttl must be a whole number of days")
	}
	return nil
}

// singleTestProvider replaces its one key in place (single = true).
type singleTestProvider struct{ *testProvider }

func (singleTestProvider) SingleKey() bool { return true }

// deactivatingTestProvider can deactivate keys and report their last use
// (deactivate = true).
type deactivatingTestProvider struct{ *testProvider }

var (
	_ providers.Deactivator   = deactivatingTestProvider{}
	_ providers.UsageReporter = deactivatingTestProvider{}
)

func (deactivatingTestProvider) LastUsed(context.Context, string) (time.Time, error) {
	return time.Time{}, nil
}

func (deactivatingTestProvider) UsageReportingDelay() time.Duration { return 0 }

func (deactivatingTestProvider) Deactivate(context.Context, string) error { return nil }

func (deactivatingTestProvider) Activate(context.Context, string) error { return nil }

func (p *testProvider) Target() string { return "test:" + p.name }

func (p *testProvider) Create(context.Context, plugin.Rotation) (plugin.Key, error) {
	return plugin.Key{}, errors.New("test provider creates nothing")
}

func (p *testProvider) Delete(context.Context, string) error { return nil }

type testSink struct{ path string }

var _ sinks.Sink = (*testSink)(nil)

func newTestSink(env *plugin.Env, body hcl.Body) (sinks.Sink, hcl.Diagnostics) {
	var cfg struct {
		Path string `hcl:"path"`
		Mode string `hcl:"mode,optional"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	return &testSink{path: env.Path(cfg.Path)}, nil
}

func (s *testSink) Location() string { return "test:" + s.path }

func (s *testSink) Current(context.Context) (sinks.Version, error) { return "", nil }

func (s *testSink) Stage(context.Context, plugin.Rotation, plugin.Key, sinks.State) (sinks.Version, error) {
	return "", nil
}

func (s *testSink) Promote(context.Context, plugin.Rotation, plugin.Key, sinks.State) (sinks.Version, error) {
	return "", nil
}

func (s *testSink) Rollback(context.Context, plugin.Rotation, sinks.State) error { return nil }

type testProbe struct{ url string }

var _ probes.Probe = (*testProbe)(nil)

func newTestProbe(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg struct {
		URL          string `hcl:"url,optional"`
		ExpectStatus int    `hcl:"expect_status,optional"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	return &testProbe{url: cfg.URL}, nil
}

func (p *testProbe) Check(context.Context, plugin.Key) error { return nil }

type testKeyProbe struct{ testProbe }

var _ probes.Targeter = (*testKeyProbe)(nil)

func newTestKeyProbe(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	p, diags := newTestProbe(env, body)
	if diags.HasErrors() {
		return nil, diags
	}
	return &testKeyProbe{*p.(*testProbe)}, nil
}

func (p *testKeyProbe) DefaultTarget() probes.Target { return probes.TargetKey }

type testReloader struct{ command []string }

var _ reloaders.Reloader = (*testReloader)(nil)

func newTestReloader(env *plugin.Env, body hcl.Body) (reloaders.Reloader, hcl.Diagnostics) {
	var cfg struct {
		Command []string `hcl:"command"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	return &testReloader{command: cfg.Command}, nil
}

func (r *testReloader) Reload(context.Context, plugin.Rotation, plugin.Key) error { return nil }

type testNotifier struct{ url string }

var _ notifiers.Notifier = (*testNotifier)(nil)

func newTestNotifier(env *plugin.Env, body hcl.Body) (notifiers.Notifier, hcl.Diagnostics) {
	var cfg struct {
		URL string `hcl:"url"`
	}
	if diags := env.Decode(body, &cfg); diags.HasErrors() {
		return nil, diags
	}
	return &testNotifier{url: cfg.URL}, nil
}

func (n *testNotifier) Notify(context.Context, notifiers.Message) error { return nil }
