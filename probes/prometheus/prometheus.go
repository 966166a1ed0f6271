// Package prometheus implements the prometheus probe: a PromQL query over
// the dependents' own metrics (a gateway's or the applications' request
// counters by status code) and a condition on its result, so that a fleet
// in which one instance never picked up the new key fails the probe even
// when a single synthetic request would pass.
//
// One Check is one measurement. The engine repeats it every `interval`
// and requires `successes` consecutive passes, through verify and the soak
// (and, with revoke.watch, after revocation). An empty result or NaN is
// inconclusive: never a pass.
package prometheus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
)

func init() { probes.Register("prometheus", New) }

// Defaults.
const (
	DefaultRequestTimeout = 10 * time.Second
	// fallbackScrapeInterval is assumed when the server's configuration
	// cannot be read (Prometheus's own default).
	fallbackScrapeInterval = time.Minute
	// maxResponse bounds how much of a response is read.
	maxResponse = 8 << 20
)

// ErrInconclusive reports a measurement that can neither pass nor fail: an
// empty result (no series yet, a target that just appeared) or NaN (0/0).
var ErrInconclusive = errors.New("inconclusive")

// ErrConditionMet reports a measurement that failed its condition.
var ErrConditionMet = errors.New("condition failed")

type config struct {
	Address           string  `hcl:"address"`
	Query             string  `hcl:"query"`
	FailIf            *string `hcl:"fail_if,optional"`
	PassIf            *string `hcl:"pass_if,optional"`
	InitialDelay      *string `hcl:"initial_delay,optional"`
	FailureLimit      *int    `hcl:"failure_limit,optional"`
	InconclusiveLimit *int    `hcl:"inconclusive_limit,optional"`
	Baseline          bool    `hcl:"baseline,optional"`
	CAFile            *string `hcl:"ca_file,optional"`
	CertFile          *string `hcl:"cert_file,optional"`
	KeyFile           *string `hcl:"key_file,optional"`
	BearerTokenFile   *string `hcl:"bearer_token_file,optional"`
	Username          *string `hcl:"username,optional"`
	PasswordFile      *string `hcl:"password_file,optional"`
	RequestTimeout    *string `hcl:"request_timeout,optional"`

	AddressRange           hcl.Range `hcl:"address,attr_range"`
	QueryRange             hcl.Range `hcl:"query,attr_range"`
	FailIfRange            hcl.Range `hcl:"fail_if,attr_range"`
	PassIfRange            hcl.Range `hcl:"pass_if,attr_range"`
	InitialDelayRange      hcl.Range `hcl:"initial_delay,attr_range"`
	FailureLimitRange      hcl.Range `hcl:"failure_limit,attr_range"`
	InconclusiveLimitRange hcl.Range `hcl:"inconclusive_limit,attr_range"`
	CertFileRange          hcl.Range `hcl:"cert_file,attr_range"`
	UsernameRange          hcl.Range `hcl:"username,attr_range"`
	RequestTimeoutRange    hcl.Range `hcl:"request_timeout,attr_range"`
}

// Probe evaluates one query per check.
type Probe struct {
	policy    string
	address   string
	query     *template.Template
	queryText string
	cond      hcl.Expression
	condText  string
	// failIf is true for fail_if (the condition names a failure), false
	// for pass_if.
	failIf            bool
	initialDelay      time.Duration // 0: derive from the server
	failureLimit      int
	inconclusiveLimit int // -1: no limit (until the probe's timeout)
	baseline          bool
	caFile            string
	certFile, keyFile string
	tokenFile         string
	username          string
	passwordFile      string
	timeout           time.Duration

	mu    sync.Mutex
	state map[string]*keyState
	// derivedDelay caches the initial delay read from the server.
	derivedDelay time.Duration
}

// keyState is what the probe remembers about the measurements of one new
// key in one phase of the rotation (verify, soak, watch): when it first
// ran, the baseline, and the current runs of failed and inconclusive
// results. Each phase follows a change (promote, deactivate, revoke)
// whose effect needs the initial delay to show in the metrics.
type keyState struct {
	first         time.Time
	baseline      *float64
	failures      int
	inconclusives int
}

var (
	_ probes.Probe     = (*Probe)(nil)
	_ probes.Describer = (*Probe)(nil)
)

// Vars returns the template variables of a query; exported for the README
// test and the plan output.
func Vars() []string { return []string{".Policy", ".NewKeyID", ".OldKeyID"} }

// New decodes a prometheus probe block (without the common probe
// attributes).
func New(env *plugin.Env, body hcl.Body) (probes.Probe, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	errAt := func(r *hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r})
	}
	p := &Probe{policy: env.Policy, inconclusiveLimit: -1, baseline: cfg.Baseline, timeout: DefaultRequestTimeout, state: map[string]*keyState{}}

	u, err := url.Parse(cfg.Address)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errAt(at(cfg.AddressRange), "Invalid address", "Write the Prometheus server's base URL, such as \"https://prometheus.internal:9090\".")
	case u.User != nil:
		errAt(at(cfg.AddressRange), "Credentials in address", "Remove the user and password from the URL; use username and password_file, or bearer_token_file.")
	default:
		p.address = strings.TrimSuffix(u.String(), "/")
	}

	p.queryText = cfg.Query
	if strings.TrimSpace(cfg.Query) == "" {
		errAt(at(cfg.QueryRange), "Empty query", "Write a PromQL query whose result is one number, such as the share of requests refused with 401 or 403.")
	} else if t, err := template.New("query").Option("missingkey=error").Parse(cfg.Query); err != nil {
		errAt(at(cfg.QueryRange), "Invalid query template", fmt.Sprintf("The query does not parse as a template: %s. Variables: %s.", err, strings.Join(Vars(), ", ")))
	} else if err := t.Execute(&strings.Builder{}, queryData{Policy: "p", NewKeyID: "n", OldKeyID: "o"}); err != nil {
		errAt(at(cfg.QueryRange), "Unknown query variable", fmt.Sprintf("%s. The query may use %s.", err, strings.Join(Vars(), ", ")))
	} else {
		p.query = t
	}

	switch {
	case (cfg.FailIf == nil) == (cfg.PassIf == nil):
		errAt(env.DefRange.Ptr(), "One condition required", "Set exactly one of fail_if (for example \"result > 0.01\") or pass_if (for example \"result <= 0.01\").")
	case cfg.FailIf != nil:
		p.failIf, p.condText = true, *cfg.FailIf
		p.cond = parseCondition(p.condText, cfg.Baseline, at(cfg.FailIfRange), &diags)
	default:
		p.condText = *cfg.PassIf
		p.cond = parseCondition(p.condText, cfg.Baseline, at(cfg.PassIfRange), &diags)
	}

	if cfg.InitialDelay != nil {
		d, err := duration.Parse(*cfg.InitialDelay)
		if err != nil || d < 0 {
			errAt(at(cfg.InitialDelayRange), "Invalid initial_delay", "Write a duration such as \"90s\" or \"2m\".")
		}
		p.initialDelay = d
	}
	if cfg.FailureLimit != nil {
		if *cfg.FailureLimit < 0 {
			errAt(at(cfg.FailureLimitRange), "Invalid failure_limit", "failure_limit is the number of failed measurements in a row that are tolerated: 0 or more.")
		}
		p.failureLimit = *cfg.FailureLimit
	}
	if cfg.InconclusiveLimit != nil {
		if *cfg.InconclusiveLimit < 0 {
			errAt(at(cfg.InconclusiveLimitRange), "Invalid inconclusive_limit", "inconclusive_limit is the number of inconclusive measurements in a row that are tolerated: 0 or more. Leave it out to keep measuring until the probe's timeout.")
		}
		p.inconclusiveLimit = *cfg.InconclusiveLimit
	}
	if cfg.RequestTimeout != nil {
		d, err := duration.Parse(*cfg.RequestTimeout)
		if err != nil || d <= 0 {
			errAt(at(cfg.RequestTimeoutRange), "Invalid request_timeout", "Write a positive duration such as \"10s\".")
		}
		p.timeout = d
	}
	if (cfg.CertFile == nil) != (cfg.KeyFile == nil) {
		errAt(at(cfg.CertFileRange), "Client certificate incomplete", "Set both cert_file and key_file, or neither.")
	}
	if (cfg.Username == nil) != (cfg.PasswordFile == nil) {
		errAt(at(cfg.UsernameRange), "Basic authentication incomplete", "Set both username and password_file, or neither.")
	}
	if cfg.Username != nil && cfg.BearerTokenFile != nil {
		errAt(at(cfg.UsernameRange), "Two authentication methods", "Use either bearer_token_file or username with password_file.")
	}
	opt := func(s *string) string {
		if s == nil {
			return ""
		}
		return env.Path(*s)
	}
	p.caFile, p.certFile, p.keyFile = opt(cfg.CAFile), opt(cfg.CertFile), opt(cfg.KeyFile)
	p.tokenFile, p.passwordFile = opt(cfg.BearerTokenFile), opt(cfg.PasswordFile)
	if cfg.Username != nil {
		p.username = *cfg.Username
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// parseCondition parses a condition such as "result > 0.01" or
// "result > baseline * 1.1" as an HCL expression over result and baseline.
func parseCondition(text string, baseline bool, rng *hcl.Range, diags *hcl.Diagnostics) hcl.Expression {
	expr, d := hclsyntax.ParseExpression([]byte(text), rng.Filename, rng.Start)
	if d.HasErrors() {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid condition", Detail: fmt.Sprintf("The condition %q does not parse: %s. Write an expression such as \"result > 0.01\".", text, d[0].Summary), Subject: rng})
		return nil
	}
	for _, v := range expr.Variables() {
		switch v.RootName() {
		case "result":
		case "baseline":
			if !baseline {
				*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Baseline not measured", Detail: "The condition uses baseline; set baseline = true so that the query is measured before the new key takes effect.", Subject: rng})
			}
		default:
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown condition variable", Detail: fmt.Sprintf("The condition may use result and baseline, not %q.", v.RootName()), Subject: rng})
		}
	}
	return expr
}

type queryData struct {
	Policy, NewKeyID, OldKeyID string
}

// DefaultTarget: the probe watches dependents.
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetDependent }

// Check takes one measurement for the key and returns nil when it passes.
// A failed condition wraps ErrConditionMet, an empty or NaN result wraps
// ErrInconclusive; either is permanent once more than failure_limit (or
// inconclusive_limit) happened in a row.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	log := zerolog.Ctx(ctx)
	c, err := p.client()
	if err != nil {
		return plugin.Permanent(fmt.Errorf("prometheus %s: %w", p.address, err))
	}
	phase := ""
	if info, ok := plugin.ProbeInfoFrom(ctx); ok {
		phase = info.Phase
	}
	st := p.stateFor(key.ID + "/" + phase)
	query, err := p.render(ctx, key)
	if err != nil {
		return plugin.Permanent(err)
	}
	if delay, err := p.delay(ctx, c); err != nil {
		return err
	} else if wait := time.Until(st.first.Add(delay)); wait > 0 {
		log.Debug().Str("probe", "prometheus").Str("initial_delay", delay.String()).Msg("waiting for the first measurement")
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus: initial delay of %s not over: %w", delay, ctx.Err())
		case <-time.After(wait):
		}
	}
	if p.baseline && st.baseline == nil {
		vals, err := p.measure(ctx, c, query, st.first)
		if err != nil {
			return err
		}
		b, ok := single(vals)
		if !ok {
			return p.inconclusive(st, fmt.Errorf("prometheus: baseline of %q at %s: %w: %s", p.queryText, st.first.UTC().Format(time.RFC3339), ErrInconclusive, describe(vals)))
		}
		p.mu.Lock()
		st.baseline = &b
		p.mu.Unlock()
		log.Info().Str("probe", "prometheus").Str("query", p.queryText).Float64("baseline", b).Msg("baseline measured")
	}
	vals, err := p.measure(ctx, c, query, time.Now())
	if err != nil {
		return err
	}
	if len(vals) == 0 || anyNaN(vals) {
		return p.inconclusive(st, fmt.Errorf("prometheus: %q: %w: %s, which is never a pass", p.queryText, ErrInconclusive, describe(vals)))
	}
	for _, v := range vals {
		hit, err := p.eval(v, st.baseline)
		if err != nil {
			return plugin.Permanent(fmt.Errorf("prometheus: condition %q: %w", p.condText, err))
		}
		if hit == p.failIf {
			p.mu.Lock()
			st.failures++
			st.inconclusives = 0
			n := st.failures
			p.mu.Unlock()
			err := fmt.Errorf("prometheus: %q gave %s; %s: %w (%d in a row, failure_limit %d)", p.queryText, formatValue(v, st.baseline), p.conditionText(), ErrConditionMet, n, p.failureLimit)
			log.Warn().Str("probe", "prometheus").Str("query", p.queryText).Float64("value", v).Str("condition", p.conditionText()).Msg("measurement failed")
			if n > p.failureLimit {
				return plugin.Permanent(err)
			}
			return err
		}
	}
	p.mu.Lock()
	st.failures, st.inconclusives = 0, 0
	p.mu.Unlock()
	log.Debug().Str("probe", "prometheus").Str("query", p.queryText).Str("values", describe(vals)).Str("condition", p.conditionText()).Msg("measurement passed")
	return nil
}

// Describe says what the probe measures, for plan.
func (p *Probe) Describe() string {
	return fmt.Sprintf("%q at %s, %s", p.queryText, p.address, p.conditionText())
}

func (p *Probe) conditionText() string {
	if p.failIf {
		return "fail_if " + p.condText
	}
	return "pass_if " + p.condText
}

func (p *Probe) inconclusive(st *keyState, err error) error {
	p.mu.Lock()
	st.inconclusives++
	n := st.inconclusives
	p.mu.Unlock()
	if p.inconclusiveLimit >= 0 && n > p.inconclusiveLimit {
		return plugin.Permanent(fmt.Errorf("%w (%d in a row, inconclusive_limit %d)", err, n, p.inconclusiveLimit))
	}
	return err
}

// stateFor returns the state of one key and phase, forgetting the others:
// the probe measures one new key in one phase at a time.
func (p *Probe) stateFor(id string) *keyState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.state[id]; ok {
		return st
	}
	clear(p.state)
	st := &keyState{first: time.Now()}
	p.state[id] = st
	return st
}

func (p *Probe) render(ctx context.Context, key plugin.Key) (string, error) {
	var b strings.Builder
	d := queryData{Policy: p.policy, NewKeyID: key.ID}
	if info, ok := plugin.ProbeInfoFrom(ctx); ok {
		d.OldKeyID = info.OldKeyID
	}
	if err := p.query.Execute(&b, d); err != nil {
		return "", fmt.Errorf("prometheus: rendering the query: %w", err)
	}
	return b.String(), nil
}

var rangeRE = regexp.MustCompile(`\[\s*([0-9]+[smhdwy](?:[0-9]+[smhdwy])*)\s*(?::[^\]]*)?\]`)

// delay returns the initial delay: as configured, or one scrape interval
// (read from the server's configuration) plus the longest range window in
// the query, so that the first measurement covers samples taken after the
// new key took effect.
func (p *Probe) delay(ctx context.Context, c *http.Client) (time.Duration, error) {
	if p.initialDelay > 0 {
		return p.initialDelay, nil
	}
	p.mu.Lock()
	d := p.derivedDelay
	p.mu.Unlock()
	if d > 0 {
		return d, nil
	}
	scrape := fallbackScrapeInterval
	var cfg struct {
		YAML string `json:"yaml"`
	}
	if err := p.get(ctx, c, "/api/v1/status/config", &cfg); err == nil {
		scrape = ScrapeInterval(cfg.YAML)
	}
	d = scrape + longestRange(p.queryText)
	p.mu.Lock()
	p.derivedDelay = d
	p.mu.Unlock()
	return d, nil
}

// ScrapeInterval reads global.scrape_interval from a Prometheus
// configuration as /api/v1/status/config returns it.
func ScrapeInterval(yaml string) time.Duration {
	inGlobal := false
	for _, line := range strings.Split(yaml, "\n") {
		if !strings.HasPrefix(line, " ") {
			inGlobal = strings.HasPrefix(line, "global:")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "scrape_interval:"); ok && inGlobal {
			if d, err := model.ParseDuration(strings.TrimSpace(v)); err == nil && d > 0 {
				return time.Duration(d)
			}
		}
	}
	return fallbackScrapeInterval
}

func longestRange(q string) time.Duration {
	var max time.Duration
	for _, m := range rangeRE.FindAllStringSubmatch(q, -1) {
		if d, err := model.ParseDuration(m[1]); err == nil && time.Duration(d) > max {
			max = time.Duration(d)
		}
	}
	return max
}

func (p *Probe) measure(ctx context.Context, c *http.Client, query string, at time.Time) ([]float64, error) {
	form := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, c, "/api/v1/query?"+form.Encode(), &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var samples []struct {
			Value [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &samples); err != nil {
			return nil, fmt.Errorf("prometheus %s: decoding the result: %w", p.address, err)
		}
		out := make([]float64, len(samples))
		for i, s := range samples {
			v, err := sampleValue(s.Value[1])
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: %w", p.address, err)
			}
			out[i] = v
		}
		return out, nil
	case "scalar":
		var pair [2]json.RawMessage
		if err := json.Unmarshal(data.Result, &pair); err != nil {
			return nil, fmt.Errorf("prometheus %s: decoding the result: %w", p.address, err)
		}
		v, err := sampleValue(pair[1])
		if err != nil {
			return nil, fmt.Errorf("prometheus %s: %w", p.address, err)
		}
		return []float64{v}, nil
	default:
		return nil, plugin.Permanent(fmt.Errorf("prometheus: query %q returns a %s; write one that returns an instant vector or a scalar", p.queryText, data.ResultType))
	}
}

// sampleValue decodes a sample value, which the API sends as a string
// ("0.5", "NaN", "+Inf").
func sampleValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("decoding a sample value: %w", err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("decoding a sample value %q: %w", s, err)
	}
	return v, nil
}

// get calls a Prometheus HTTP API endpoint and decodes its data. An
// error status from Prometheus ("bad_data": the query does not parse) is
// permanent; network errors, 5xx and timeouts are retried by the engine.
func (p *Probe) get(ctx context.Context, c *http.Client, path string, data any) error {
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, p.address+path, nil)
	if err != nil {
		return plugin.Permanent(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", p.address, err)
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return plugin.Permanent(fmt.Errorf("prometheus %s: credential refused (%s): check bearer_token_file or username/password_file", p.address, resp.Status))
	case resp.StatusCode >= 500:
		return fmt.Errorf("prometheus %s: %s", p.address, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&env); err != nil {
		return fmt.Errorf("prometheus %s: %s, decoding the response: %w", p.address, resp.Status, err)
	}
	if env.Status != "success" {
		if env.ErrorType == "bad_data" {
			return plugin.Permanent(fmt.Errorf("prometheus %s: query %q refused: %s", p.address, p.queryText, env.Error))
		}
		return fmt.Errorf("prometheus %s: %s: %s: %s", p.address, resp.Status, env.ErrorType, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("prometheus %s: decoding the data: %w", p.address, err)
	}
	return nil
}

func (p *Probe) eval(v float64, baseline *float64) (bool, error) {
	vars := map[string]cty.Value{"result": cty.NumberFloatVal(v)}
	if baseline != nil {
		vars["baseline"] = cty.NumberFloatVal(*baseline)
	}
	out, diags := p.cond.Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		return false, errors.New(diags[0].Summary + ": " + diags[0].Detail)
	}
	if out.IsNull() || !out.IsKnown() || out.Type() != cty.Bool {
		return false, fmt.Errorf("the condition must be true or false, not %s", out.Type().FriendlyName())
	}
	return out.True(), nil
}

func (p *Probe) client() (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.caFile != "" {
		pem, err := os.ReadFile(p.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", p.caFile)
		}
		tlsCfg.RootCAs = roots
	}
	if p.certFile != "" {
		cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file and key_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	var auth string
	switch {
	case p.tokenFile != "":
		b, err := os.ReadFile(p.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading bearer_token_file: %w", err)
		}
		auth = "Bearer " + strings.TrimSpace(string(b))
	case p.username != "":
		b, err := os.ReadFile(p.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("reading password_file: %w", err)
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(p.username, strings.TrimRight(string(b), "\r\n"))
		auth = r.Header.Get("Authorization")
	}
	rt := http.RoundTripper(&http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true})
	if auth != "" {
		rt = authTransport{next: rt, auth: auth}
	}
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

type authTransport struct {
	next http.RoundTripper
	auth string
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.auth)
	return a.next.RoundTrip(r)
}

func single(vals []float64) (float64, bool) {
	if len(vals) != 1 || math.IsNaN(vals[0]) {
		return 0, false
	}
	return vals[0], true
}

func anyNaN(vals []float64) bool {
	for _, v := range vals {
		if math.IsNaN(v) {
			return true
		}
	}
	return false
}

func describe(vals []float64) string {
	switch len(vals) {
	case 0:
		return "no data (empty result)"
	case 1:
		if math.IsNaN(vals[0]) {
			return "NaN"
		}
		return fmt.Sprintf("%g", vals[0])
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%d series: %s", len(vals), strings.Join(parts, ", "))
}

func formatValue(v float64, baseline *float64) string {
	if baseline != nil {
		return fmt.Sprintf("%g (baseline %g)", v, *baseline)
	}
	return fmt.Sprintf("%g", v)
}
