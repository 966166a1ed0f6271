// Package vault implements the `vault "NAME" { ... }` connection: the
// address, TLS settings and authentication that the Vault plugins
// (sink vault_kv, provider vault_approle_secret_id, probe vault_login)
// share.
//
// A connection logs in lazily, on first use, never while the configuration
// is loaded. Tokens obtained by logging in are renewed in the background
// once the daemon starts the connection, and obtained again when renewal
// ends; a request refused with 403 is retried once after logging in again.
// Tokens, role ids and secret ids never appear in logs or errors.
package vault

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
)

// Kind is the block type of Vault connections.
const Kind = "vault"

// DefaultRequestTimeout bounds one HTTP request to Vault when the
// connection does not set request_timeout.
const DefaultRequestTimeout = 30 * time.Second

func init() {
	plugin.ConnectionKinds.Register(Kind, New)
}

type config struct {
	Address               string      `hcl:"address,optional"`
	CAFile                string      `hcl:"ca_file,optional"`
	ClientCertFile        string      `hcl:"client_cert_file,optional"`
	ClientCertFileRange   hcl.Range   `hcl:"client_cert_file,attr_range"`
	ClientKeyFile         string      `hcl:"client_key_file,optional"`
	ClientKeyFileRange    hcl.Range   `hcl:"client_key_file,attr_range"`
	TLSServerName         string      `hcl:"tls_server_name,optional"`
	TLSSkipVerifyInsecure bool        `hcl:"tls_skip_verify_insecure,optional"`
	TLSSkipVerifyRange    hcl.Range   `hcl:"tls_skip_verify_insecure,attr_range"`
	Namespace             string      `hcl:"namespace,optional"`
	RequestTimeout        string      `hcl:"request_timeout,optional"`
	RequestTimeoutRange   hcl.Range   `hcl:"request_timeout,attr_range"`
	AddressRange          hcl.Range   `hcl:"address,attr_range"`
	Auth                  []authBlock `hcl:"auth,block"`
}

type authBlock struct {
	Method   string    `hcl:"method,label"`
	Body     hcl.Body  `hcl:",remain"`
	DefRange hcl.Range `hcl:",def_range"`
}

type tokenFileConfig struct {
	Path string `hcl:"path"`
}

type approleConfig struct {
	RoleIDFile           string    `hcl:"role_id_file"`
	SecretIDFile         string    `hcl:"secret_id_file,optional"`
	SecretIDWrapped      bool      `hcl:"secret_id_wrapped,optional"`
	SecretIDWrappedRange hcl.Range `hcl:"secret_id_wrapped,attr_range"`
	SecretIDWrappingPath string    `hcl:"secret_id_wrapping_path,optional"`
	RemoveSecretIDFile   bool      `hcl:"remove_secret_id_file,optional"`
	RemoveRange          hcl.Range `hcl:"remove_secret_id_file,attr_range"`
	Mount                string    `hcl:"mount,optional"`
}

// authKind says how a connection obtains its token.
type authKind int

const (
	authEnvToken authKind = iota
	authTokenFile
	authAppRole
)

func (k authKind) String() string {
	switch k {
	case authTokenFile:
		return "token_file"
	case authAppRole:
		return "approle"
	default:
		return "VAULT_TOKEN"
	}
}

// settings are a connection's decoded, validated options.
type settings struct {
	address        string
	caFile         string
	clientCert     string
	clientKey      string
	serverName     string
	skipVerify     bool
	namespace      string
	requestTimeout time.Duration

	auth      authKind
	tokenFile string
	approle   approleConfig
}

// New is the connection factory registered for `vault "NAME" { ... }`. It
// decodes and validates the block; it does not contact Vault or read any
// credential file.
func New(env *plugin.Env, name string, body hcl.Body) (any, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	s := settings{
		caFile:     env.Path(cfg.CAFile),
		clientCert: env.Path(cfg.ClientCertFile),
		clientKey:  env.Path(cfg.ClientKeyFile),
		serverName: cfg.TLSServerName,
		skipVerify: cfg.TLSSkipVerifyInsecure,
		namespace:  cfg.Namespace,
	}
	if s.namespace == "" {
		s.namespace = os.Getenv("VAULT_NAMESPACE")
	}

	s.address = cfg.Address
	addrRange := cfg.AddressRange.Ptr()
	if s.address == "" {
		s.address = os.Getenv("VAULT_ADDR")
		addrRange = env.DefRange.Ptr()
	}
	switch u, err := url.Parse(s.address); {
	case s.address == "":
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing Vault address",
			Detail:   fmt.Sprintf("Set address in vault %q, such as address = \"https://vault.internal:8200\", or set the environment variable VAULT_ADDR.", name),
			Subject:  env.DefRange.Ptr(),
		})
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid Vault address",
			Detail:   fmt.Sprintf("The address %q is not a URL of the form https://HOST:PORT.", s.address),
			Subject:  addrRange,
		})
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Vault address without TLS",
			Detail:   fmt.Sprintf("The address %q uses plain http to a host that is not this machine: tokens and secrets would cross the network unencrypted. Use https.", s.address),
			Subject:  addrRange,
		})
	}

	if (cfg.ClientCertFile == "") != (cfg.ClientKeyFile == "") {
		r := cfg.ClientCertFileRange
		if cfg.ClientCertFile == "" {
			r = cfg.ClientKeyFileRange
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incomplete client certificate",
			Detail:   "client_cert_file and client_key_file go together: set both or neither.",
			Subject:  r.Ptr(),
		})
	}
	if cfg.TLSSkipVerifyInsecure {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "TLS verification disabled",
			Detail:   fmt.Sprintf("tls_skip_verify_insecure = true makes vault %q accept any server certificate, so anyone on the network path can read the tokens and secrets sent. Use ca_file with the CA that signed Vault's certificate instead.", name),
			Subject:  cfg.TLSSkipVerifyRange.Ptr(),
		})
	}

	s.requestTimeout = DefaultRequestTimeout
	if cfg.RequestTimeout != "" {
		d, err := duration.Parse(cfg.RequestTimeout)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid request_timeout", Detail: err.Error(), Subject: cfg.RequestTimeoutRange.Ptr()})
		case d <= 0:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid request_timeout", Detail: "request_timeout must be positive, such as \"30s\".", Subject: cfg.RequestTimeoutRange.Ptr()})
		default:
			s.requestTimeout = d
		}
	}

	if len(cfg.Auth) > 1 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate auth block",
			Detail:   fmt.Sprintf("A vault connection takes at most one auth block. Previous definition was at %s.", cfg.Auth[0].DefRange),
			Subject:  cfg.Auth[1].DefRange.Ptr(),
		})
	}
	if len(cfg.Auth) > 0 {
		diags = append(diags, decodeAuth(env, cfg.Auth[0], &s)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return newConn(name, s), diags
}

func decodeAuth(env *plugin.Env, b authBlock, s *settings) hcl.Diagnostics {
	switch b.Method {
	case "token_file":
		var tf tokenFileConfig
		diags := env.Decode(b.Body, &tf)
		s.auth = authTokenFile
		s.tokenFile = env.Path(tf.Path)
		return diags
	case "approle":
		var ar approleConfig
		diags := env.Decode(b.Body, &ar)
		if diags.HasErrors() {
			return diags
		}
		if ar.Mount == "" {
			ar.Mount = "approle"
		}
		if ar.SecretIDFile == "" && ar.SecretIDWrapped {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "secret_id_wrapped without secret_id_file", Detail: "secret_id_wrapped says how to read secret_id_file; set secret_id_file too.", Subject: ar.SecretIDWrappedRange.Ptr()})
		}
		if ar.SecretIDFile == "" && ar.RemoveSecretIDFile {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "remove_secret_id_file without secret_id_file", Detail: "remove_secret_id_file deletes secret_id_file after reading it; set secret_id_file too.", Subject: ar.RemoveRange.Ptr()})
		}
		ar.RoleIDFile = env.Path(ar.RoleIDFile)
		ar.SecretIDFile = env.Path(ar.SecretIDFile)
		s.auth = authAppRole
		s.approle = ar
		return diags
	default:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unsupported auth method",
			Detail:   fmt.Sprintf("Auth method %q is not supported. Use auth \"approle\" { ... } or auth \"token_file\" { ... }, or no auth block to use the VAULT_TOKEN environment variable.", b.Method),
			Subject:  b.DefRange.Ptr(),
		}}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
