package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/plugin"
)

// Limits of the HTTP machinery.
const (
	// DefaultRequestTimeout bounds one request when request_timeout is unset.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultRetries is how many times a request is retried after a 429,
	// a 5xx or a network error, when retries is unset.
	DefaultRetries = 4
	// MaxResponse is the largest response body read (1 MiB).
	MaxResponse = 1 << 20
	// maxRetryAfter caps the wait a Retry-After header may ask for.
	maxRetryAfter = time.Minute
)

// Client sends the requests of one provider block to one origin. TLS is
// always verified; redirects are never followed, so a header carrying the
// admin credential goes nowhere but the configured origin.
type Client struct {
	// Kind and Policy name the provider in messages.
	Kind, Policy string
	// Base is the origin (and path prefix) every request goes to.
	Base *url.URL
	// CAFile holds extra CA certificates; read at each operation.
	CAFile string
	// Timeout bounds one request.
	Timeout time.Duration
	// Retries is how many times a retryable failure is retried.
	Retries int
	// Token supplies the admin credential; nil for none.
	Token TokenSource
	// backoff is the first retry delay (tests shorten it).
	backoff time.Duration
}

// Request is one HTTP request, already rendered.
type Request struct {
	// Op names the operation in messages: "create", "list", ...
	Op     string
	Method string
	// URL is absolute, on the client's origin.
	URL    *url.URL
	Header http.Header
	Body   []byte
	// Secrets are values that must never appear in an error (the admin
	// credential, rendered header values).
	Secrets []string
}

// Response is an answer. Body is secret-bearing: never quote it, and
// clear it when done.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Shown is u for messages: without user info, query and fragment, which
// could carry a credential.
func Shown(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}

func (c *Client) httpClient() (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, plugin.Permanent(fmt.Errorf("reading ca_file: %w", err))
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, plugin.Permanent(fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile))
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: timeout,
			DisableKeepAlives:   true,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// prefix is the start of every error message: the provider, the policy,
// the operation, the method and the URL (never a credential).
func (c *Client) prefix(r *Request) string {
	return fmt.Sprintf("%s provider of policy %q: %s: %s %s", c.Kind, c.Policy, r.Op, r.Method, Shown(r.URL))
}

// Errorf returns an error prefixed like every error of the request.
func (c *Client) Errorf(r *Request, format string, args ...any) error {
	return fmt.Errorf("%s: %w", c.prefix(r), fmt.Errorf(format, args...))
}

// idempotent reports whether a failed attempt of method may be repeated
// without the risk of a second effect.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// Do sends r, retrying with backoff on 429, on 5xx and on network errors
// (a POST or PATCH only on 429 and 503, or when the connection was never
// made: another failure may have taken effect). A Retry-After header is
// honoured. Any status that is not retried is returned as a Response for
// the caller to judge with StatusError.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	hc, err := c.httpClient()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.prefix(r), err)
	}
	defer hc.CloseIdleConnections()
	delay := c.backoff
	if delay <= 0 {
		delay = 500 * time.Millisecond
	}
	var out *Response
	var outErr error
	attempts := 0
	err = retry.Do(ctx, retry.Options{
		Backoff:     retry.Backoff{Initial: delay, Max: 30 * time.Second},
		Attempts:    max(c.Retries, 0) + 1,
		FitDeadline: true,
		Retryable:   func(error) bool { return true },
		MinWait: func(err error) time.Duration {
			var a *again
			if errors.As(err, &a) {
				return a.wait
			}
			return 0
		},
	}, func(ctx context.Context) error {
		attempts++
		resp, err := c.once(ctx, hc, r)
		more, wait := false, time.Duration(0)
		switch {
		case err != nil:
			more = idempotent(r.Method) || notConnected(err)
		case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable:
			more, wait = true, retryAfter(resp.Header, time.Now())
		case resp.Status >= 500:
			more = idempotent(r.Method)
		}
		if !more {
			out, outErr = resp, err
			return nil
		}
		if err == nil {
			clear(resp.Body)
			err = c.Errorf(r, "status %d (%s) after %d attempts; the server is overloaded or failing: rekey retries the step later", resp.Status, http.StatusText(resp.Status), attempts)
		}
		return &again{err: err, wait: wait}
	})
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	return out, outErr
}

// again is a failure worth another attempt, after at least wait.
type again struct {
	err  error
	wait time.Duration
}

func (a *again) Error() string { return a.err.Error() }
func (a *again) Unwrap() error { return a.err }

func (c *Client) once(ctx context.Context, hc *http.Client, r *Request) (*Response, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL.String(), body)
	if err != nil {
		return nil, plugin.Permanent(c.Errorf(r, "%w", c.scrub(err, r.Secrets)))
	}
	for name, vs := range r.Header {
		req.Header[name] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "rekey")
	}
	if r.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := c.Errorf(r, "cannot reach the API: %w; check that it is up and that the URL is right", c.scrub(err, r.Secrets))
		var unknownAuthority x509.UnknownAuthorityError
		if errors.As(err, &unknownAuthority) {
			msg = plugin.Permanent(fmt.Errorf("%w; if the server uses a private CA, give its certificate with ca_file", msg))
		}
		return nil, msg
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		clear(b)
		return nil, c.Errorf(r, "status %d, reading the response: %w", resp.StatusCode, c.scrub(err, r.Secrets))
	}
	if len(b) > MaxResponse {
		clear(b)
		return nil, plugin.Permanent(c.Errorf(r, "status %d: the response is larger than %d MiB", resp.StatusCode, MaxResponse>>20))
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// notConnected reports whether err happened before the request could have
// reached the server (connection refused, no such host).
func notConnected(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// StatusError judges a status that is not among want. 401 and 403 both
// mean that the credential was not accepted; 404 wraps plugin.ErrNotFound.
// The message never quotes the response body, which may carry a secret.
func (c *Client) StatusError(r *Request, resp *Response, want []int) error {
	s := resp.Status
	switch {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return plugin.Permanent(c.Errorf(r, "status %d: the admin credential was not accepted (rekey treats 401 and 403 alike: a missing, expired, revoked or deleted credential, or one without the permission; Tyk answers 403 for a deleted key). %s", s, c.tokenAdvice()))
	case s == http.StatusNotFound:
		return plugin.Permanent(c.Errorf(r, "status 404: %w: check the URL and that what it names (consumer, user, project) exists", plugin.ErrNotFound))
	case s == http.StatusConflict:
		return plugin.Permanent(c.Errorf(r, "status 409: the API reports a conflict (a duplicate key or name)"))
	case s >= 500 || s == http.StatusTooManyRequests:
		return c.Errorf(r, "status %d (%s); rekey retries the step later", s, http.StatusText(s))
	case s >= 300 && s < 400:
		return plugin.Permanent(c.Errorf(r, "status %d: a redirect, which rekey never follows (the admin credential must go to the configured URL only); give the final URL", s))
	}
	return plugin.Permanent(c.Errorf(r, "status %d (%s), expected %s; the response body is not shown because it may carry a secret", s, http.StatusText(s), statusList(want)))
}

func (c *Client) tokenAdvice() string {
	if c.Token == nil {
		return "No admin credential is configured: add an auth block if the API needs one."
	}
	return "Check the admin credential from " + c.Token.Describe() + "."
}

// scrub returns err unless its text contains one of the secrets.
func (c *Client) scrub(err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return errors.New("the error message contained a secret value and was withheld")
		}
	}
	return err
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

// Accepts reports whether status is among want.
func Accepts(want []int, status int) bool { return slices.Contains(want, status) }
