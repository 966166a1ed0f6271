package policies

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/robfig/cron/v3"

	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/reloaders"
	"github.com/rekeyhq/rekey/sinks"
)

// Defaults of policy settings.
const (
	DefaultStepTimeout   = 2 * time.Minute
	DefaultMaxFailures   = 5
	DefaultRevokeAfter   = time.Hour
	DefaultProbeTimeout  = 2 * time.Minute
	DefaultProbeInterval = time.Second
	DefaultReloadTimeout = time.Minute
)

var policyName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

var policySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "every"}, {Name: "cron"}, {Name: "window"}, {Name: "jitter"}, {Name: "max_age"},
		{Name: "rotate_blind"}, {Name: "step_timeout"}, {Name: "max_failures"}, {Name: "labels"},
		{Name: "expiry_lead"}, {Name: "key_ttl"}, {Name: "expiry_notify"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "provider", LabelNames: []string{"kind"}},
		{Type: "sink", LabelNames: []string{"kind"}},
		{Type: "probe", LabelNames: []string{"kind"}},
		{Type: "reload", LabelNames: []string{"kind"}},
		{Type: "revoke"},
		{Type: "notify", LabelNames: []string{"kind"}},
	},
}

var revokeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "after"}, {Name: "soak"}, {Name: "wait_unused"}, {Name: "watch"}},
}

// The attributes the loader takes from plugin blocks before the plugin
// decodes the rest.
var (
	sinkCommon   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "fields"}}}
	probeCommon  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "target"}, {Name: "timeout"}, {Name: "interval"}, {Name: "successes"}}}
	reloadCommon = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "timeout"}}}
)

// examples are shown in duration errors.
var durationExamples = map[string]string{
	"every": "30d", "jitter": "1h", "max_age": "45d", "step_timeout": "2m", "key_ttl": "7d", "expiry_lead": "2d",
	"after": "1h", "soak": "24h", "watch": "10m", "timeout": "2m", "interval": "1s",
}

func (ld *loading) decodePolicies() {
	seen := map[string]hcl.Range{}
	targets := map[string]owner{}
	locations := map[string]owner{}
	for _, f := range ld.files {
		if f.content == nil {
			continue
		}
		for _, blk := range f.content.Blocks {
			if blk.Type != "policy" || len(blk.Labels) != 1 {
				continue
			}
			name := blk.Labels[0]
			if !policyName.MatchString(name) {
				// Reported, and the policy is checked all the same: a bad
				// name must not hide the other problems.
				ld.diags = append(ld.diags, errAt(blk.LabelRanges[0], "Invalid policy name", fmt.Sprintf("The policy name %s is not valid. Use 1 to 63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit, such as \"payments-aws\".", quoteShort(name))))
			}
			if prev, dup := seen[name]; dup {
				ld.diags = append(ld.diags, duplicate(blk.DefRange, prev, "policy", fmt.Sprintf("A policy named %q is already defined; policy names are unique across all files.", name)))
				continue
			}
			seen[name] = blk.DefRange
			p := ld.decodePolicy(blk, f)
			if p == nil {
				continue
			}
			if p.Provider.Provider != nil {
				t := p.Provider.Provider.Target()
				if prev, dup := targets[t]; dup {
					ld.diags = append(ld.diags, errAt(p.Provider.DefRange, "Duplicate provider target", fmt.Sprintf("This provider manages the same credential (%s) as the provider of policy %q at %s. Two policies must not rotate the same key.", t, prev.policy, pos(prev.at))))
				} else {
					targets[t] = owner{p.Name, p.Provider.DefRange}
				}
			}
			for _, s := range p.Sinks {
				if s.Sink == nil {
					continue
				}
				loc := s.Sink.Location()
				if prev, dup := locations[loc]; dup {
					ld.diags = append(ld.diags, errAt(s.DefRange, "Duplicate sink location", fmt.Sprintf("This sink writes the same location (%s) as a sink of policy %q at %s. Each location may be written by one sink only.", loc, prev.policy, pos(prev.at))))
				} else {
					locations[loc] = owner{p.Name, s.DefRange}
				}
			}
			ld.cfg.Policies = append(ld.cfg.Policies, p)
		}
	}
}

type owner struct {
	policy string
	at     hcl.Range
}

// attrRanges remembers where a policy's settings were written, for the
// cross-field checks.
type attrRanges map[string]hcl.Range

func (ld *loading) decodePolicy(blk *hcl.Block, f *file) *Policy {
	start := len(ld.diags)
	p := &Policy{
		Name:        blk.Labels[0],
		DefRange:    blk.DefRange,
		StepTimeout: DefaultStepTimeout,
		MaxFailures: DefaultMaxFailures,
		Revoke:      Revoke{After: DefaultRevokeAfter},
	}
	content, diags := blk.Body.Content(policySchema)
	ld.diags = append(ld.diags, diags...)
	at := attrRanges{}
	for name, attr := range content.Attributes {
		at[name] = attr.Expr.Range()
	}
	attrs := content.Attributes
	s := &p.Schedule
	if a, ok := attrs["every"]; ok {
		s.Every, _ = ld.duration(a, f.ctx, positive)
	}
	if a, ok := attrs["cron"]; ok {
		var expr string
		if ld.decodeString(a, f.ctx, &expr) {
			sched, err := parseCron(expr)
			if err != nil {
				ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid cron expression", sentence(err)))
			} else {
				s.Cron, s.CronExpr = sched, expr
			}
		}
	}
	if _, every := attrs["every"]; !every {
		if _, c := attrs["cron"]; !c {
			ld.diags = append(ld.diags, errAt(blk.DefRange, "Missing schedule", fmt.Sprintf("Policy %q says nothing about when to rotate. Set every = \"30d\" (rotate when the key is this old), cron = \"0 9 * * 1\", or both.", p.Name)))
		}
	}
	if a, ok := attrs["window"]; ok {
		var expr string
		if ld.decodeString(a, f.ctx, &expr) {
			w, err := ParseWindow(expr)
			if err != nil {
				ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid window", sentence(err)))
			} else {
				s.Window = w
			}
		}
	}
	if a, ok := attrs["jitter"]; ok {
		s.Jitter, _ = ld.duration(a, f.ctx, nonNegative)
	}
	if a, ok := attrs["max_age"]; ok {
		s.MaxAge, _ = ld.duration(a, f.ctx, positive)
	}
	ld.decodeExpiry(p, attrs, f)
	if a, ok := attrs["labels"]; ok {
		p.Labels = ld.decodeLabels(a, f.ctx)
	}
	if a, ok := attrs["rotate_blind"]; ok {
		ld.diags = append(ld.diags, decodeExpr(a.Expr, f.ctx, &p.RotateBlind)...)
	}
	if a, ok := attrs["step_timeout"]; ok {
		if d, ok := ld.duration(a, f.ctx, positive); ok {
			p.StepTimeout = d
		}
	}
	if a, ok := attrs["max_failures"]; ok {
		if n, ok := ld.count(a, f.ctx, "max_failures", "the number of consecutive failed attempts after which the policy stops until an operator steps in"); ok {
			p.MaxFailures = n
		}
	}

	var provider, revoke *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "provider":
			if provider != nil {
				ld.diags = append(ld.diags, duplicate(b.DefRange, provider.DefRange, "provider block", "A policy rotates the key of exactly one provider; move the second one to a policy of its own."))
				continue
			}
			provider = b
			ld.decodeProvider(p, b, f)
		case "sink":
			ld.decodeSink(p, b, f)
		case "probe":
			ld.decodeProbe(p, b, f, at)
		case "reload":
			ld.decodeReload(p, b, f)
		case "revoke":
			if revoke != nil {
				ld.diags = append(ld.diags, duplicate(b.DefRange, revoke.DefRange, "revoke block", "A policy has at most one revoke block."))
				continue
			}
			revoke = b
			ld.decodeRevoke(p, b, f, at)
		case "notify":
			ld.decodeNotify(p, b, f)
		}
	}
	// A block with the wrong number of labels is reported by Content and
	// left out of it; it still counts as present here.
	written := map[string]bool{}
	for _, b := range content.Blocks {
		written[b.Type] = true
	}
	if sb, ok := blk.Body.(*hclsyntax.Body); ok {
		for _, b := range sb.Blocks {
			written[b.Type] = true
		}
	}
	if !written["provider"] {
		ld.diags = append(ld.diags, errAt(blk.DefRange, "Missing provider block", fmt.Sprintf("Policy %q needs exactly one provider block saying where its key is created, such as provider \"exec\" { ... }.", p.Name)))
	}
	if !written["sink"] {
		ld.diags = append(ld.diags, errAt(blk.DefRange, "Missing sink block", fmt.Sprintf("Policy %q needs at least one sink block saying where dependents read the key, such as sink \"file\" { ... }.", p.Name)))
	}
	if !written["probe"] {
		if p.RotateBlind {
			ld.diags = append(ld.diags, warnAt(blk.DefRange, "Policy rotates blind", fmt.Sprintf("Policy %q rotates without checking that the new key works; dependents may be served a broken key. Add a probe block to check the key before the old one is revoked.", p.Name)))
		} else {
			ld.diags = append(ld.diags, errAt(blk.DefRange, "Missing probe block", fmt.Sprintf("Policy %q has no probe, so nothing would check that the new key works before the old one is revoked. Add a probe block, or set rotate_blind = true to accept rotating unchecked.", p.Name)))
		}
	}
	// The cross-field checks run whatever else is wrong: a setting that
	// is invalid on its own is left at zero, which they skip.
	ld.crossCheck(p, at)
	ld.checkGuards(p, blk.Body)
	if hcl.Diagnostics(ld.diags[start:]).HasErrors() {
		return nil
	}
	return p
}

func (ld *loading) decodeNotify(p *Policy, b *hcl.Block, f *file) {
	factory, ok := lookupKind(ld, notifiers.Registry, b)
	if !ok {
		return
	}
	content, remain, diags := b.Body.PartialContent(notifiers.CommonSchema)
	ld.diags = append(ld.diags, diags...)
	on, diags := notifiers.DecodeFilter(content.Attributes["on"], f.ctx)
	ld.diags = append(ld.diags, diags...)
	n, diags := factory(ld.env(p, b, f), suggestingBody{remain, notifiers.CommonSchema})
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if n == nil {
		ld.diags = append(ld.diags, pluginReturnedNil(b))
		return
	}
	p.Notify = append(p.Notify, NotifyBlock{Kind: b.Labels[0], DefRange: b.DefRange, On: on, Notifier: n})
}

// crossCheck validates settings against each other once each is valid on
// its own.
func (ld *loading) crossCheck(p *Policy, at attrRanges) {
	s := p.Schedule
	ld.crossCheckExpiry(p, at)
	if s.MaxAge > 0 && s.Every > 0 && s.MaxAge <= s.Every {
		ld.diags = append(ld.diags, errAt(at["max_age"], "Invalid max_age", fmt.Sprintf("max_age (%s) must be longer than every (%s): a key is rotated at every, and max_age is the limit past which it is rotated even outside the window and reported as overdue.", FormatDuration(s.MaxAge), FormatDuration(s.Every))))
	}
	if s.Jitter > 0 && s.Every > 0 && s.Jitter >= s.Every {
		ld.diags = append(ld.diags, errAt(at["jitter"], "Invalid jitter", fmt.Sprintf("jitter (%s) must be shorter than every (%s); it spreads due times of many policies by a small fraction of the period.", FormatDuration(s.Jitter), FormatDuration(s.Every))))
	}
	if p.Revoke.Soak > 0 && p.Provider.Provider != nil {
		if _, ok := providers.AsDeactivator(p.Provider.Provider); !ok {
			ld.diags = append(ld.diags, warnAt(at["soak"], "Soak without deactivation", fmt.Sprintf("The %s provider of this policy cannot deactivate keys, so revoke.soak (%s) only delays deleting the old key; nothing tests that dependents manage without it first. Remove soak, or configure deactivation where the provider supports it.", p.Provider.Kind, FormatDuration(p.Revoke.Soak))))
		}
	}
	if p.Revoke.WaitUnused && p.Provider.Provider != nil {
		if _, ok := providers.AsUsageReporter(p.Provider.Provider); !ok {
			ld.diags = append(ld.diags, warnAt(at["wait_unused"], "wait_unused without usage reports", fmt.Sprintf("The %s provider of this policy cannot tell when a key was last used, so revoke.wait_unused has no effect: the old key is revoked after revoke.after whether or not a dependent still uses it. Rely on a longer revoke.after, a soak where the provider can deactivate, and dependent probes, or remove wait_unused.", p.Provider.Kind)))
		}
	}
	if p.Provider.Provider != nil && providers.IsInPlace(p.Provider.Provider) && (len(p.Reloads) == 0 || !hasDependentProbe(p)) {
		ld.diags = append(ld.diags, warnAt(p.Provider.DefRange, "Key replaced in place", fmt.Sprintf("The %s provider of this policy changes the one key in place: the old key stops working the moment the new one is created, so a dependent that has not re-read the sink fails at its next login. Add a reload block and a probe with target = \"dependent\" that prove the dependents moved to the new key, or use strategy = \"alternating\".", p.Provider.Kind)))
	}
	if s.Every > 0 && p.Revoke.After+p.Revoke.Soak >= s.Every {
		r, ok := at["revoke"]
		if !ok {
			r = at["every"]
		}
		ld.diags = append(ld.diags, warnAt(r, "Revocation outlasts the rotation period", fmt.Sprintf("revoke after + soak (%s) is not shorter than every (%s): rotations would queue behind pending revocations. Shorten after/soak or rotate less often.", FormatDuration(p.Revoke.After+p.Revoke.Soak), FormatDuration(s.Every))))
	}
	if s.Window != nil {
		var longest ProbeBlock
		for _, pb := range p.Probes {
			if pb.Timeout > longest.Timeout {
				longest = pb
			}
		}
		if open := s.Window.OpenPerDay(); longest.Timeout > open {
			ld.diags = append(ld.diags, warnAt(at["window"], "Window shorter than probe timeout", fmt.Sprintf("The window is open %s a day, less than the %s timeout of the probe %q at %s: a rotation started late in the window may still be probing after it closes.", FormatDuration(open), FormatDuration(longest.Timeout), longest.Kind, pos(longest.DefRange))))
		}
	}
}

func (ld *loading) decodeRevoke(p *Policy, b *hcl.Block, f *file, at attrRanges) {
	at["revoke"] = b.DefRange
	content, diags := b.Body.Content(revokeSchema)
	ld.diags = append(ld.diags, diags...)
	if a, ok := content.Attributes["after"]; ok {
		if d, ok := ld.duration(a, f.ctx, nonNegative); ok {
			p.Revoke.After = d
		}
	}
	if a, ok := content.Attributes["soak"]; ok {
		at["soak"] = a.Expr.Range()
		if d, ok := ld.duration(a, f.ctx, nonNegative); ok {
			p.Revoke.Soak = d
		}
	}
	if a, ok := content.Attributes["wait_unused"]; ok {
		at["wait_unused"] = a.Expr.Range()
		ld.diags = append(ld.diags, decodeExpr(a.Expr, f.ctx, &p.Revoke.WaitUnused)...)
	}
	if a, ok := content.Attributes["watch"]; ok {
		if d, ok := ld.duration(a, f.ctx, nonNegative); ok {
			p.Revoke.Watch = d
		}
	}
}

func (ld *loading) env(p *Policy, b *hcl.Block, f *file) *plugin.Env {
	return &plugin.Env{
		Policy:      p.Name,
		Kind:        b.Labels[0],
		DefRange:    b.DefRange,
		BaseDir:     f.dir,
		StateDir:    ld.cfg.StateDir,
		EvalContext: f.ctx,
		Connections: ld.cfg.Connections,
	}
}

func (ld *loading) decodeProvider(p *Policy, b *hcl.Block, f *file) {
	factory, ok := lookupKind(ld, providers.Registry, b)
	if !ok {
		return
	}
	prov, diags := factory(ld.env(p, b, f), b.Body)
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if prov == nil {
		ld.diags = append(ld.diags, pluginReturnedNil(b))
		return
	}
	p.Provider = ProviderBlock{Kind: b.Labels[0], DefRange: b.DefRange, Provider: prov}
}

func (ld *loading) decodeSink(p *Policy, b *hcl.Block, f *file) {
	factory, ok := lookupKind(ld, sinks.Registry, b)
	if !ok {
		return
	}
	content, remain, diags := b.Body.PartialContent(sinkCommon)
	ld.diags = append(ld.diags, diags...)
	sb := SinkBlock{Kind: b.Labels[0], DefRange: b.DefRange}
	if a, ok := content.Attributes["fields"]; ok {
		var m map[string]string
		d := decodeExpr(a.Expr, f.ctx, &m)
		ld.diags = append(ld.diags, d...)
		if !d.HasErrors() {
			for k, v := range m {
				if k == "" || v == "" {
					ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid fields map", "fields maps the names written to the sink to the key's field names, such as { AWS_ACCESS_KEY_ID = \"access_key_id\" }; neither may be empty."))
					break
				}
			}
			sb.Fields = m
		}
	}
	sink, diags := factory(ld.env(p, b, f), suggestingBody{remain, sinkCommon})
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if sink == nil {
		ld.diags = append(ld.diags, pluginReturnedNil(b))
		return
	}
	sb.Sink = sink
	p.Sinks = append(p.Sinks, sb)
	for _, o := range p.Sinks[:len(p.Sinks)-1] {
		if o.Sink.Location() == sink.Location() {
			ld.diags = append(ld.diags, errAt(b.DefRange, "Duplicate sink location", fmt.Sprintf("This sink writes the same location (%s) as the sink at %s. Each location may be written by one sink only.", sink.Location(), pos(o.DefRange))))
		}
	}
}

func (ld *loading) decodeProbe(p *Policy, b *hcl.Block, f *file, at attrRanges) {
	factory, ok := lookupKind(ld, probes.Registry, b)
	if !ok {
		return
	}
	content, remain, diags := b.Body.PartialContent(probeCommon)
	ld.diags = append(ld.diags, diags...)
	pb := ProbeBlock{Kind: b.Labels[0], DefRange: b.DefRange, Timeout: DefaultProbeTimeout, Interval: DefaultProbeInterval, Successes: 1}
	a := content.Attributes
	if attr, ok := a["target"]; ok {
		var t string
		if ld.decodeString(attr, f.ctx, &t) {
			switch probes.Target(t) {
			case probes.TargetKey, probes.TargetDependent:
				pb.Target = probes.Target(t)
			default:
				ld.diags = append(ld.diags, errAt(attr.Expr.Range(), "Invalid probe target", fmt.Sprintf("The target %q is not known.%s Use \"key\" (the probe tests the new key itself, before dependents are served it) or \"dependent\" (it tests that dependents work, after promotion).", t, didYouMean(t, []string{"key", "dependent"}))))
			}
		}
	}
	if attr, ok := a["timeout"]; ok {
		if d, ok := ld.duration(attr, f.ctx, positive); ok {
			pb.Timeout = d
		}
	}
	if attr, ok := a["interval"]; ok {
		if d, ok := ld.duration(attr, f.ctx, positive); ok {
			pb.Interval = d
		}
	}
	if attr, ok := a["successes"]; ok {
		if n, ok := ld.count(attr, f.ctx, "successes", "the number of consecutive passes required"); ok {
			pb.Successes = n
		}
	}
	if pb.Interval > pb.Timeout {
		r := b.DefRange
		if attr, ok := a["timeout"]; ok {
			r = attr.Expr.Range()
		} else if attr, ok := a["interval"]; ok {
			r = attr.Expr.Range()
		}
		ld.diags = append(ld.diags, errAt(r, "Probe timeout shorter than interval", fmt.Sprintf("The probe's timeout (%s) must be at least its interval (%s), or it would never retry.", FormatDuration(pb.Timeout), FormatDuration(pb.Interval))))
	}
	probe, diags := factory(ld.env(p, b, f), suggestingBody{remain, probeCommon})
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if probe == nil {
		ld.diags = append(ld.diags, pluginReturnedNil(b))
		return
	}
	if pb.Target == "" {
		pb.Target = probes.TargetDependent
		if t, ok := probe.(probes.Targeter); ok {
			pb.Target = t.DefaultTarget()
		}
	}
	pb.Probe = probe
	p.Probes = append(p.Probes, pb)
}

func (ld *loading) decodeReload(p *Policy, b *hcl.Block, f *file) {
	factory, ok := lookupKind(ld, reloaders.Registry, b)
	if !ok {
		return
	}
	content, remain, diags := b.Body.PartialContent(reloadCommon)
	ld.diags = append(ld.diags, diags...)
	rb := ReloadBlock{Kind: b.Labels[0], DefRange: b.DefRange, Timeout: DefaultReloadTimeout}
	if attr, ok := content.Attributes["timeout"]; ok {
		if d, ok := ld.duration(attr, f.ctx, positive); ok {
			rb.Timeout = d
		}
	}
	r, diags := factory(ld.env(p, b, f), suggestingBody{remain, reloadCommon})
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if r == nil {
		ld.diags = append(ld.diags, pluginReturnedNil(b))
		return
	}
	rb.Reloader = r
	p.Reloads = append(p.Reloads, rb)
}

func lookupKind[F any](ld *loading, reg *plugin.Registry[F], b *hcl.Block) (F, bool) {
	kind := b.Labels[0]
	f, ok := reg.Lookup(kind)
	if ok {
		return f, true
	}
	family := reg.Family()
	kinds := reg.Kinds()
	detail := fmt.Sprintf("There is no %s kind %q.%s", family, kind, didYouMean(kind, kinds))
	if len(kinds) == 0 {
		detail += fmt.Sprintf(" This build of rekey has no %s kinds.", family)
	} else {
		detail += fmt.Sprintf(" Known %s kinds: %s.", family, strings.Join(kinds, ", "))
	}
	ld.diags = append(ld.diags, errAt(b.LabelRanges[0], fmt.Sprintf("Unknown %s kind", family), detail))
	return f, false
}

func pluginReturnedNil(b *hcl.Block) *hcl.Diagnostic {
	return errAt(b.DefRange, "Plugin failed", fmt.Sprintf("The %s kind %q returned no instance and no error; this is a bug in that plugin.", b.Type, b.Labels[0]))
}

type durationRule int

const (
	positive durationRule = iota
	nonNegative
)

// duration evaluates a duration attribute; it reports false after
// recording a diagnostic.
func (ld *loading) duration(a *hcl.Attribute, ctx *hcl.EvalContext, rule durationRule) (time.Duration, bool) {
	var s string
	if !ld.decodeString(a, ctx, &s) {
		return 0, false
	}
	ex := durationExamples[a.Name]
	if ex == "" {
		ex = "1h"
	}
	d, err := ParseDuration(s)
	if err != nil {
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid duration", fmt.Sprintf("%s: %s. Write a number followed by a unit s, m, h, d (days) or w (weeks), such as %q or \"1h30m\".", a.Name, err, ex)))
		return 0, false
	}
	switch {
	case rule == positive && d <= 0:
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid duration", fmt.Sprintf("%s must be positive, e.g. %q.", a.Name, ex)))
		return 0, false
	case rule == nonNegative && d < 0:
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid duration", fmt.Sprintf("%s must not be negative; use \"0s\" for none, or a duration such as %q.", a.Name, ex)))
		return 0, false
	}
	return d, true
}

// count evaluates an attribute that must be a whole number of at least 1.
func (ld *loading) count(a *hcl.Attribute, ctx *hcl.EvalContext, name, meaning string) (int, bool) {
	var n int
	diags := decodeExpr(a.Expr, ctx, &n)
	ld.diags = append(ld.diags, diags...)
	if diags.HasErrors() {
		return 0, false
	}
	if n < 1 {
		ld.diags = append(ld.diags, errAt(a.Expr.Range(), "Invalid "+name, fmt.Sprintf("%s must be at least 1; it is %s.", name, meaning)))
		return 0, false
	}
	return n, true
}

// decodeExpr evaluates expr into v (a pointer) with gohcl's conversions.
func decodeExpr(expr hcl.Expression, ctx *hcl.EvalContext, v any) (diags hcl.Diagnostics) {
	return gohcl.DecodeExpression(expr, ctx, v)
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronReference is the instant from which a cron expression must fire, to
// refuse expressions such as "0 0 30 2 *" that never do.
var cronReference = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func parseCron(expr string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("the cron expression %q is not valid", expr)
		}
	}()
	if strings.HasPrefix(expr, "@every") {
		return nil, fmt.Errorf("write every = %q instead of cron = %q: every counts from the key's creation and accepts d and w units", strings.TrimSpace(strings.TrimPrefix(expr, "@every")), expr)
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("time zones are not supported in cron expressions (%q); cron times are UTC, use a window to restrict local hours", expr)
	}
	sched, err = cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%w; use five fields (minute hour day-of-month month day-of-week, such as \"0 9 * * 1\") or a descriptor such as @daily or @weekly", err)
	}
	if sched.Next(cronReference).IsZero() {
		return nil, fmt.Errorf("the cron expression %q never fires", expr)
	}
	return sched, nil
}

// checkListen returns what is wrong with a listen address, or "".
func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("The listen address %q is not HOST:PORT, such as \"127.0.0.1:9464\".", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("The port in %q must be a number from 0 to 65535.", addr)
	}
	if net.ParseIP(host) == nil && strings.ContainsAny(host, " /\\@?#") {
		return fmt.Sprintf("The host in %q is not an IP address or host name.", addr)
	}
	return ""
}

// sentence renders an error as a diagnostic detail: capitalised, with a
// full stop.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// suggestingBody is handed to plugin factories in place of a block body
// from which the loader has taken the common attributes: its strict
// Content also suggests those names, so that "timout" in a probe gets
// "Did you mean "timeout"?" although the probe's own schema lacks it.
type suggestingBody struct {
	hcl.Body
	common *hcl.BodySchema
}

// Content implements hcl.Body.
func (b suggestingBody) Content(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	s := &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema(nil), schema.Attributes...), Blocks: schema.Blocks}
	for _, c := range b.common.Attributes {
		known := false
		for _, a := range schema.Attributes {
			known = known || a.Name == c.Name
		}
		for _, bl := range schema.Blocks {
			known = known || bl.Type == c.Name
		}
		if !known {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: c.Name})
		}
	}
	return b.Body.Content(s)
}

// hasDependentProbe reports whether p probes its dependents.
func hasDependentProbe(p *Policy) bool {
	for _, pb := range p.Probes {
		if pb.Target == probes.TargetDependent {
			return true
		}
	}
	return false
}
