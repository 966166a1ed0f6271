// Package webhook implements the webhook notifier: an HTTP POST of the
// notification as JSON, signed with HMAC-SHA256 when a signing key is
// configured, over TLS that is always verified.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/internal/harden"
	"github.com/rekeyhq/rekey/notifiers"
	"github.com/rekeyhq/rekey/plugin"
)

func init() { notifiers.Register("webhook", New) }

// DefaultTimeout bounds one delivery attempt when timeout is unset.
const DefaultTimeout = 10 * time.Second

// Headers set by the notifier.
const (
	HeaderSignature = "X-Rekey-Signature"
	HeaderEvent     = "X-Rekey-Event"
	HeaderDelivery  = "X-Rekey-Delivery"
)

type config struct {
	URL            string            `hcl:"url"`
	Headers        map[string]string `hcl:"headers,optional"`
	SigningKeyFile string            `hcl:"signing_key_file,optional"`
	Timeout        *string           `hcl:"timeout,optional"`
	CAFile         string            `hcl:"ca_file,optional"`

	URLRange     hcl.Range `hcl:"url,attr_range"`
	HeadersRange hcl.Range `hcl:"headers,attr_range"`
	TimeoutRange hcl.Range `hcl:"timeout,attr_range"`
}

// Notifier posts notifications to a URL.
type Notifier struct {
	url            *url.URL
	headers        map[string]string
	signingKeyFile string
	caFile         string
	timeout        time.Duration

	mu     sync.Mutex
	client *http.Client
}

var _ notifiers.Notifier = (*Notifier)(nil)

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// secretHeader matches header names that carry credentials, which must not
// be written in a policy file.
var secretHeader = regexp.MustCompile(`(?i)(auth|token|secret|password|passwd|key|cookie|session|signature|credential)`)

// New decodes a webhook notify block.
func New(env *plugin.Env, body hcl.Body) (notifiers.Notifier, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	errAt := func(r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at(r)})
	}

	n := &Notifier{headers: map[string]string{}, timeout: DefaultTimeout}
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil || u.Host == "":
		errAt(cfg.URLRange, "Invalid webhook URL", fmt.Sprintf("url must be an absolute https:// URL, such as \"https://hooks.example.com/rekey\"; %q is not.", cfg.URL))
	case u.User != nil:
		errAt(cfg.URLRange, "Credentials in webhook URL", "url must not contain a user name or password: they would be a secret written in the policy file. Authenticate the webhook with signing_key_file (an HMAC signature in the "+HeaderSignature+" header) instead.")
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !isLoopback(u.Hostname()) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Webhook without TLS",
				Detail:   "url uses plain http to a host that is not this machine: anyone on the path can read and change notifications. Use https://.",
				Subject:  at(cfg.URLRange),
			})
		}
	default:
		errAt(cfg.URLRange, "Invalid webhook URL", fmt.Sprintf("url must use https:// (or http:// to this machine), not %q.", u.Scheme))
	}
	n.url = u

	names := make([]string, 0, len(cfg.Headers))
	for k := range cfg.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch canon := http.CanonicalHeaderKey(k); {
		case !headerName.MatchString(k):
			errAt(cfg.HeadersRange, "Invalid header name", fmt.Sprintf("%q is not a valid HTTP header name.", k))
		case strings.HasPrefix(canon, "X-Rekey-") || canon == "Content-Type" || canon == "Content-Length" || canon == "Host":
			errAt(cfg.HeadersRange, "Reserved header", fmt.Sprintf("%s is set by rekey and cannot be configured.", canon))
		case secretHeader.MatchString(k):
			errAt(cfg.HeadersRange, "Secret in headers", fmt.Sprintf("The header %s looks like it carries a credential; headers are written in the policy file, which must hold no secrets. Authenticate the webhook with signing_key_file: the receiver checks the HMAC-SHA256 of the body in %s.", canon, HeaderSignature))
		case strings.ContainsAny(cfg.Headers[k], "\r\n\x00"):
			errAt(cfg.HeadersRange, "Invalid header value", fmt.Sprintf("The value of %s contains a line break or NUL.", canon))
		default:
			n.headers[canon] = cfg.Headers[k]
		}
	}

	if cfg.Timeout != nil {
		d, err := duration.Parse(*cfg.Timeout)
		switch {
		case err != nil:
			errAt(cfg.TimeoutRange, "Invalid timeout", err.Error()+".")
		case d <= 0:
			errAt(cfg.TimeoutRange, "Invalid timeout", "timeout must be positive, such as \"10s\".")
		default:
			n.timeout = d
		}
	}
	if cfg.SigningKeyFile != "" {
		n.signingKeyFile = env.Path(cfg.SigningKeyFile)
	}
	if cfg.CAFile != "" {
		n.caFile = env.Path(cfg.CAFile)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return n, diags
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpClient builds the client on first use, so that a missing ca_file is
// reported at delivery rather than when validating the policy elsewhere.
func (n *Notifier) httpClient() (*http.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.client != nil {
		return n.client, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.caFile != "" {
		pem, err := os.ReadFile(n.caFile)
		if err != nil {
			return nil, plugin.Permanent(fmt.Errorf("reading ca_file: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, plugin.Permanent(fmt.Errorf("ca_file %s holds no PEM certificate", n.caFile))
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	n.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return n.client, nil
}

// signingKey reads the key on each delivery, so that replacing the file
// takes effect without a reload.
func (n *Notifier) signingKey() ([]byte, error) {
	if err := harden.CheckFile(n.signingKeyFile, harden.FileOptions{Secret: true}); err != nil {
		return nil, plugin.Permanent(fmt.Errorf("signing_key_file: %w", err))
	}
	b, err := os.ReadFile(n.signingKeyFile)
	if err != nil {
		return nil, plugin.Permanent(fmt.Errorf("reading signing_key_file: %w", err))
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, plugin.Permanent(fmt.Errorf("signing_key_file %s is empty; put a random key in it, e.g. `openssl rand -hex 32 > %s`", n.signingKeyFile, n.signingKeyFile))
	}
	return b, nil
}

// Signature returns the value of the X-Rekey-Signature header for body:
// "sha256=" and the hex HMAC-SHA256 of the body under key. Receivers
// compute the same and compare in constant time.
func Signature(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Notify posts m once. 2xx is success; 408, 429, 5xx and network errors
// are worth retrying; other answers, TLS verification failures and
// configuration problems are permanent.
func (n *Notifier) Notify(ctx context.Context, m notifiers.Message) error {
	client, err := n.httpClient()
	if err != nil {
		return err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return plugin.Permanent(fmt.Errorf("encoding notification: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url.String(), bytes.NewReader(body))
	if err != nil {
		return plugin.Permanent(fmt.Errorf("building webhook request: %w", err))
	}
	for k, v := range n.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rekey")
	req.Header.Set(HeaderEvent, m.Event)
	req.Header.Set(HeaderDelivery, m.ID)
	if n.signingKeyFile != "" {
		key, err := n.signingKey()
		if err != nil {
			return err
		}
		req.Header.Set(HeaderSignature, Signature(key, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return n.transportError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("webhook at %s answered %s", n.url.Host, resp.Status)
	case code >= 300 && code < 400:
		return plugin.Permanent(fmt.Errorf("webhook at %s answered %s (redirects are not followed); set url to the final address", n.url.Host, resp.Status))
	default:
		return plugin.Permanent(fmt.Errorf("webhook at %s refused the notification: %s; check the url and the receiver's signing key", n.url.Host, resp.Status))
	}
}

// transportError reports err without the URL, whose path may hold a
// token (chat webhooks), and marks certificate problems permanent.
func (n *Notifier) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) {
		return plugin.Permanent(fmt.Errorf("posting to webhook at %s: %w; if it uses a private CA, set ca_file", n.url.Host, err))
	}
	return fmt.Errorf("posting to webhook at %s: %w", n.url.Host, err)
}
