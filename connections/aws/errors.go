package aws

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// ErrorCode returns the AWS error code carried by err ("LimitExceeded",
// "ResourceNotFoundException", ...), or "" when err is not an API error.
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// permanentCodes are AWS error codes that retrying the same call cannot
// fix. Throttling, 5xx and network errors are absent: the SDK has already
// retried them and the engine backs off and tries again.
var permanentCodes = map[string]string{
	"AccessDenied":                "grant the connection's identity the permission named in the message",
	"AccessDeniedException":       "grant the connection's identity the permission named in the message",
	"UnauthorizedOperation":       "grant the connection's identity the permission named in the message",
	"InvalidClientTokenId":        "the connection's credentials are not valid AWS credentials; check the credential chain (environment, profile, role)",
	"SignatureDoesNotMatch":       "the connection's secret access key does not match its access key id; check the credential chain",
	"UnrecognizedClientException": "the connection's credentials are not valid AWS credentials; check the credential chain",
	"ValidationError":             "",
	"ValidationException":         "",
	"InvalidParameterValue":       "",
	"InvalidParameterException":   "",
	"InvalidInput":                "",
	"MalformedPolicyDocument":     "",
	"NoSuchEntity":                "",
	"ResourceNotFoundException":   "",
	"DecryptionFailure":           "check the KMS key policy: the connection's identity needs kms:Decrypt",
	"EncryptionFailure":           "check the KMS key policy: the connection's identity needs kms:GenerateDataKey",
}

// Classify marks err as permanent (plugin.Permanent) when its AWS error
// code says that retrying cannot help, adding a hint for the operator
// where one is known. Other errors are returned unchanged.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	hint, ok := permanentCodes[ErrorCode(err)]
	if !ok {
		return err
	}
	if hint != "" {
		err = &hinted{err: err, hint: hint}
	}
	return plugin.Permanent(err)
}

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + " (" + h.hint + ")" }
func (h *hinted) Unwrap() error { return h.err }

// Redact returns an error whose message has every non-empty string in
// values replaced: a key id by its masked form, anything else by the
// redaction marker. errors.Is and errors.As still see the original chain.
// Use it on errors that went through a call carrying a key, in case a
// server or library echoes it.
func Redact(err error, keyIDs []string, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, secret.Redacted), true
		}
	}
	for _, id := range keyIDs {
		if id != "" && strings.Contains(msg, id) {
			msg, changed = strings.ReplaceAll(msg, id, secret.Mask(id)), true
		}
	}
	if !changed {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
