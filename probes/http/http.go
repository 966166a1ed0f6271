// Package http implements the http probe: one HTTP request whose status
// (and optionally body) must match. Header values and the body are
// templates that may carry the new key ({{ .Key.token }}), so the probe can
// test the key itself or a dependent's health endpoint. TLS is always
// verified.
package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
)

func init() { probes.Register("http", New) }

// Defaults and limits.
const (
	DefaultRequestTimeout = 10 * time.Second
	// MaxBody is how much of a response body is read and matched.
	MaxBody = 64 << 10
)

// ErrNotAccepted is wrapped by the error of a check answered 401 or 403
// when neither was expected: the credential sent was not accepted.
var ErrNotAccepted = errors.New("the credential was not accepted")

type config struct {
	URL                  string            `hcl:"url"`
	Method               *string           `hcl:"method,optional"`
	Headers              map[string]string `hcl:"headers,optional"`
	Body                 *string           `hcl:"body,optional"`
	ExpectStatus         hcl.Expression    `hcl:"expect_status,optional"`
	ExpectBody           *string           `hcl:"expect_body,optional"`
	ExpectBodyRegex      *string           `hcl:"expect_body_regex,optional"`
	CAFile               *string           `hcl:"ca_file,optional"`
	RequestTimeout       *string           `hcl:"request_timeout,optional"`
	FollowRedirects      bool              `hcl:"follow_redirects,optional"`
	URLRange             hcl.Range         `hcl:"url,attr_range"`
	MethodRange          hcl.Range         `hcl:"method,attr_range"`
	HeadersRange         hcl.Range         `hcl:"headers,attr_range"`
	BodyRange            hcl.Range         `hcl:"body,attr_range"`
	ExpectBodyRange      hcl.Range         `hcl:"expect_body,attr_range"`
	ExpectBodyRegexRange hcl.Range         `hcl:"expect_body_regex,attr_range"`
	CAFileRange          hcl.Range         `hcl:"ca_file,attr_range"`
	RequestTimeoutRange  hcl.Range         `hcl:"request_timeout,attr_range"`
}

type header struct {
	name, text string
	tmpl       *template.Template
}

// Probe sends one request per check.
type Probe struct {
	url        *url.URL
	shown      string
	method     string
	headers    []header
	body       *template.Template
	bodyText   string
	status     []int
	expectBody string
	bodyRegex  *regexp.Regexp
	caFile     string
	timeout    time.Duration

	followRedirects bool
}

var (
	_ probes.Probe    = (*Probe)(nil)
	_ probes.Targeter = (*Probe)(nil)
)

var tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// New decodes an http probe block (without the common probe attributes).
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
	p := &Probe{method: http.MethodGet}

	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil:
		errAt(at(cfg.URLRange), "Invalid url", "The url does not parse; write an absolute URL such as \"https://payments.internal/healthz\".")
	case u.Scheme != "http" && u.Scheme != "https":
		errAt(at(cfg.URLRange), "Invalid url", "The url must start with http:// or https://.")
	case u.Host == "":
		errAt(at(cfg.URLRange), "Invalid url", "The url has no host; write an absolute URL such as \"https://payments.internal/healthz\".")
	default:
		u.Fragment = ""
		p.url = u
		p.shown = shownURL(u)
	}

	if cfg.Method != nil {
		p.method = strings.ToUpper(*cfg.Method)
		if !tokenRE.MatchString(p.method) {
			errAt(at(cfg.MethodRange), "Invalid method", fmt.Sprintf("%q is not an HTTP method; use GET, HEAD, POST, ...", *cfg.Method))
		}
	}
	names := make([]string, 0, len(cfg.Headers))
	for name := range cfg.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !tokenRE.MatchString(name) {
			errAt(at(cfg.HeadersRange), "Invalid header name", fmt.Sprintf("%q is not a valid HTTP header name.", name))
			continue
		}
		t, err := parseTemplate(name, cfg.Headers[name])
		if err != nil {
			errAt(at(cfg.HeadersRange), "Invalid header template", fmt.Sprintf("The value of header %s does not parse as a template: %s.", name, err))
			continue
		}
		p.headers = append(p.headers, header{name: http.CanonicalHeaderKey(name), text: cfg.Headers[name], tmpl: t})
	}
	if cfg.Body != nil {
		t, err := parseTemplate("body", *cfg.Body)
		if err != nil {
			errAt(at(cfg.BodyRange), "Invalid body template", fmt.Sprintf("The body does not parse as a template: %s.", err))
		}
		p.body = t
		p.bodyText = *cfg.Body
	}

	status, sdiags := decodeStatus(env, cfg.ExpectStatus)
	diags = append(diags, sdiags...)
	p.status = status

	if cfg.ExpectBody != nil && cfg.ExpectBodyRegex != nil {
		errAt(at(cfg.ExpectBodyRegexRange), "Conflicting options", "Use expect_body (a substring) or expect_body_regex, not both.")
	}
	if cfg.ExpectBody != nil {
		p.expectBody = *cfg.ExpectBody
		if p.expectBody == "" {
			errAt(at(cfg.ExpectBodyRange), "Empty expect_body", "An empty expect_body matches every response; remove it or give the text the body must contain.")
		}
	}
	if cfg.ExpectBodyRegex != nil {
		re, err := regexp.Compile(*cfg.ExpectBodyRegex)
		if err != nil {
			errAt(at(cfg.ExpectBodyRegexRange), "Invalid expect_body_regex", fmt.Sprintf("The regular expression does not compile: %s.", err))
		}
		p.bodyRegex = re
	}

	timeout := DefaultRequestTimeout
	if cfg.RequestTimeout != nil {
		d, err := duration.Parse(*cfg.RequestTimeout)
		switch {
		case err != nil:
			errAt(at(cfg.RequestTimeoutRange), "Invalid request_timeout", err.Error()+".")
		case d <= 0:
			errAt(at(cfg.RequestTimeoutRange), "Invalid request_timeout", "request_timeout must be positive, such as \"10s\".")
		}
		timeout = d
	}

	if cfg.CAFile != nil {
		p.caFile = env.Path(*cfg.CAFile)
		if pem, err := os.ReadFile(p.caFile); err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem) {
			errAt(at(cfg.CAFileRange), "Invalid ca_file", fmt.Sprintf("%s holds no PEM certificate.", p.caFile))
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	p.timeout = timeout
	p.followRedirects = cfg.FollowRedirects
	return p, diags
}

// newClient returns the client for one check. The CA file is read at each
// check, so that a renewed private CA is picked up without a reload.
func (p *Probe) newClient() (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if p.caFile != "" {
		pem, err := os.ReadFile(p.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", p.caFile)
		}
	}
	return &http.Client{
		Timeout: p.timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: p.timeout,
			DisableKeepAlives:   true,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !p.followRedirects {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirected to %s, another origin; rekey follows redirects only within the origin of url so that headers and body, which may carry the key, go nowhere else", shownURL(req.URL))
			}
			return nil
		},
	}, nil
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

// decodeStatus reads expect_status: a number or a list of numbers.
func decodeStatus(env *plugin.Env, expr hcl.Expression) ([]int, hcl.Diagnostics) {
	if expr == nil {
		return []int{http.StatusOK}, nil
	}
	v, diags := expr.Value(env.EvalContext)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() {
		return []int{http.StatusOK}, nil
	}
	bad := hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid expect_status",
		Detail:   "expect_status is a status code such as 200, or a list such as [200, 204]; codes are between 100 and 599.",
		Subject:  expr.Range().Ptr(),
	}}
	var vals []cty.Value
	switch {
	case !v.IsKnown():
		return nil, bad
	case v.Type() == cty.Number:
		vals = []cty.Value{v}
	case v.Type().IsTupleType() || v.Type().IsListType():
		if v.LengthInt() == 0 {
			return nil, bad
		}
		vals = v.AsValueSlice()
	default:
		return nil, bad
	}
	var codes []int
	for _, c := range vals {
		if c.IsNull() || !c.IsKnown() || c.Type() != cty.Number {
			return nil, bad
		}
		bf := c.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || n < 100 || n > 599 {
			return nil, bad
		}
		codes = append(codes, int(n))
	}
	return codes, nil
}

// DefaultTarget implements probes.Targeter: an http probe checks a
// dependent unless its block says target = "key".
func (p *Probe) DefaultTarget() probes.Target { return probes.TargetDependent }

// Check sends the request once.
func (p *Probe) Check(ctx context.Context, key plugin.Key) error {
	fields := key.Value.Reveal()
	data := struct {
		Key   map[string]string
		KeyID string
	}{fields, key.ID}
	secrets := make([]string, 0, len(fields)+len(p.headers)+1)
	for _, v := range fields {
		secrets = append(secrets, v)
	}

	var body io.Reader
	if p.body != nil {
		var buf bytes.Buffer
		if err := p.body.Execute(&buf, data); err != nil {
			return plugin.Permanent(fmt.Errorf("%s %s: rendering the body: %w", p.method, p.shown, scrub(templateError(err), secrets)))
		}
		if buf.String() != p.bodyText {
			secrets = append(secrets, buf.String())
		}
		body = bytes.NewReader(buf.Bytes())
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url.String(), body)
	if err != nil {
		return plugin.Permanent(fmt.Errorf("%s %s: %w", p.method, p.shown, scrub(err, secrets)))
	}
	req.Header.Set("User-Agent", "rekey-probe")
	for _, h := range p.headers {
		var buf strings.Builder
		if err := h.tmpl.Execute(&buf, data); err != nil {
			return plugin.Permanent(fmt.Errorf("%s %s: rendering header %s: %w", p.method, p.shown, h.name, scrub(templateError(err), secrets)))
		}
		v := buf.String()
		if strings.ContainsAny(v, "\r\n\x00") {
			return plugin.Permanent(fmt.Errorf("%s %s: header %s would contain a line break or NUL", p.method, p.shown, h.name))
		}
		if v != h.text {
			secrets = append(secrets, v)
		}
		if h.name == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(h.name, v)
	}

	client, err := p.newClient()
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.method, p.shown, err)
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := fmt.Errorf("%s %s: %w", p.method, p.shown, scrub(err, secrets))
		var unknownAuthority x509.UnknownAuthorityError
		if errors.As(err, &unknownAuthority) {
			msg = fmt.Errorf("%w; if the server uses a private CA, give its certificate with ca_file", msg)
		}
		return msg
	}
	defer resp.Body.Close()
	got, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	defer clear(got)

	if !slices.Contains(p.status, resp.StatusCode) {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%s %s: status %d, expected %s: %w (rekey treats 401 and 403 alike: a missing, expired, revoked or deleted key, or one without the permission; Tyk answers 403 for a deleted key)", p.method, p.shown, resp.StatusCode, statusList(p.status), ErrNotAccepted)
		}
		return fmt.Errorf("%s %s: status %d, expected %s", p.method, p.shown, resp.StatusCode, statusList(p.status))
	}
	if p.expectBody == "" && p.bodyRegex == nil {
		return nil
	}
	if readErr != nil {
		return fmt.Errorf("%s %s: reading the response body: %w", p.method, p.shown, scrub(readErr, secrets))
	}
	if p.expectBody != "" && !bytes.Contains(got, []byte(p.expectBody)) {
		return fmt.Errorf("%s %s: status %d, but the response body (first %d KiB) does not contain the expect_body text", p.method, p.shown, resp.StatusCode, MaxBody>>10)
	}
	if p.bodyRegex != nil && !p.bodyRegex.Match(got) {
		return fmt.Errorf("%s %s: status %d, but the response body (first %d KiB) does not match expect_body_regex", p.method, p.shown, resp.StatusCode, MaxBody>>10)
	}
	return nil
}

// shownURL is u for messages: without user info, query and fragment,
// which could carry a credential.
func shownURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}

func statusList(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	if len(s) == 1 {
		return s[0]
	}
	return "one of " + strings.Join(s, ", ")
}

// templateError explains the usual cause of a failed template: a key
// field that is not there (a typo, or a value unknown after a restart).
func templateError(err error) error {
	if strings.Contains(err.Error(), "map has no entry for key") {
		return fmt.Errorf("%w (a key field the template uses is missing: check the field name; after a restart of rekey in mid-rotation the key's value is no longer known)", err)
	}
	return err
}

// scrub returns err unless its text contains one of the secrets.
func scrub(err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return errors.New("the error message contained a secret value and was withheld")
		}
	}
	return err
}
