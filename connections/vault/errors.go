package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/rekeyhq/rekey/plugin"
)

// ResponseError is an error answer from Vault, reduced to one line: the
// method, the request path and Vault's messages. It never holds request
// headers or bodies.
type ResponseError struct {
	Method     string
	Path       string
	StatusCode int
	Messages   []string
	err        *api.ResponseError
}

func (e *ResponseError) Error() string {
	msg := strings.Join(e.Messages, "; ")
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("vault answered %d to %s %s: %s", e.StatusCode, e.Method, e.Path, msg)
}

// Unwrap returns the API client's error.
func (e *ResponseError) Unwrap() error { return e.err }

// HasMessage reports whether one of Vault's messages contains s.
func (e *ResponseError) HasMessage(s string) bool {
	for _, m := range e.Messages {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// AsResponseError returns the Vault error answer in err's chain, if any.
func AsResponseError(err error) (*ResponseError, bool) {
	var re *ResponseError
	if errors.As(err, &re) {
		return re, true
	}
	var ae *api.ResponseError
	if errors.As(err, &ae) {
		return fromAPI(ae), true
	}
	return nil, false
}

// IsStatus reports whether err is a Vault answer with the given HTTP status.
func IsStatus(err error, status int) bool { return isStatus(err, status) }

func isStatus(err error, status int) bool {
	re, ok := AsResponseError(err)
	return ok && re.StatusCode == status
}

func fromAPI(ae *api.ResponseError) *ResponseError {
	path := ae.URL
	if u, err := url.Parse(ae.URL); err == nil {
		path = u.Path
		if u.RawQuery != "" {
			path += "?" + u.RawQuery
		}
	}
	msgs := make([]string, 0, len(ae.Errors))
	for _, m := range ae.Errors {
		m = strings.Join(strings.Fields(m), " ")
		if ae.RawError && len(m) > 200 {
			m = m[:200] + "..."
		}
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	return &ResponseError{Method: ae.HTTPMethod, Path: path, StatusCode: ae.StatusCode, Messages: msgs, err: ae}
}

// sanitize replaces an *api.ResponseError (whose message spans several
// lines) by a *ResponseError, keeping the context wrapped around it.
func sanitize(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.ResponseError
	if !errors.As(err, &ae) {
		return err
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return err
	}
	if ae == err {
		return fromAPI(ae)
	}
	return &rewrapped{msg: strings.Replace(err.Error(), ae.Error(), fromAPI(ae).Error(), 1), err: err, re: fromAPI(ae)}
}

type rewrapped struct {
	msg string
	err error
	re  *ResponseError
}

func (r *rewrapped) Error() string   { return r.msg }
func (r *rewrapped) Unwrap() []error { return []error{r.re, r.err} }

// classify sanitizes err and marks it permanent unless retrying can help:
// network errors, timeouts of one request, 5xx, 412 and 429 are retried;
// other Vault answers, and errors not known to be transient, are not.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	err = sanitize(err)
	if plugin.IsPermanent(err) {
		return err
	}
	if ctx.Err() != nil {
		return err
	}
	if tlsErr := tlsVerification(err); tlsErr != "" {
		return plugin.Permanent(fmt.Errorf("%w (%s)", err, tlsErr))
	}
	if Retryable(err) {
		return err
	}
	return plugin.Permanent(err)
}

// tlsVerification returns advice when err is a failed verification of
// Vault's certificate, which retrying cannot fix.
func tlsVerification(err error) string {
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		cv *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &he):
		return "the certificate does not name this host: fix address or set tls_server_name"
	case errors.As(err, &ua), errors.As(err, &cv):
		return "the certificate is not signed by a trusted CA: set ca_file to the CA that signed Vault's certificate"
	case errors.As(err, &ci):
		return "the certificate is invalid or expired"
	}
	return ""
}

// Retryable reports whether err is a transient failure talking to Vault.
func Retryable(err error) bool {
	if re, ok := AsResponseError(err); ok {
		return re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusPreconditionFailed
	}
	var rt *retryableError
	if errors.As(err, &rt) {
		return true
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// Sanitize rewrites a Vault API error in err's chain to a one-line
// *ResponseError, keeping the context around it. Other errors are returned
// unchanged.
func Sanitize(err error) error { return sanitize(err) }
