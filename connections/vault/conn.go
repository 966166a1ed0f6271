package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
)

// Conn is a configured Vault connection. Plugins get it from
// plugin.Env.Connection(expr, "vault") and type-assert it. It is safe for
// concurrent use.
type Conn struct {
	name string
	s    settings

	mu         sync.Mutex
	httpClient *http.Client
	client     *api.Client
	authed     bool
	gen        uint64
	logins     int
	// loginSecret is the response of the last login, for renewal.
	loginSecret *api.Secret

	tokenStamp    fileStamp
	roleID        secret.Value
	secretID      secret.Value
	secretIDStamp fileStamp

	loginCh  chan struct{}
	cancel   context.CancelFunc
	loopDone chan struct{}
	closed   bool
}

var (
	_ plugin.Starter = (*Conn)(nil)
	_ io.Closer      = (*Conn)(nil)
)

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

func newConn(name string, s settings) *Conn {
	return &Conn{name: name, s: s, loginCh: make(chan struct{}, 1)}
}

// Name is the connection's label, the NAME in `vault "NAME"`.
func (c *Conn) Name() string { return c.name }

// Address is the Vault address the connection talks to.
func (c *Conn) Address() string { return c.s.address }

// Namespace is the Vault Enterprise namespace requests go to; empty for
// the root namespace.
func (c *Conn) Namespace() string { return c.s.namespace }

// RequestTimeout bounds one HTTP request.
func (c *Conn) RequestTimeout() time.Duration { return c.s.requestTimeout }

// Client returns the connection's API client, logged in. The client is
// shared: callers must not change its token, namespace or headers.
// Prefer Do, which also retries.
func (c *Conn) Client(ctx context.Context) (*api.Client, error) {
	cl, _, err := c.authedClient(ctx)
	if err != nil {
		return nil, classify(ctx, err)
	}
	return cl, nil
}

// NewUnauthenticatedClient returns a new API client with the connection's
// address, TLS settings and namespace and no token, for callers that log
// in with other credentials (the vault_login probe). It shares the
// connection's HTTP transport.
func (c *Conn) NewUnauthenticatedClient() (*api.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureClientLocked(); err != nil {
		return nil, err
	}
	return c.cloneWithoutToken()
}

func (c *Conn) authedClient(ctx context.Context) (*api.Client, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, plugin.Permanent(fmt.Errorf("vault connection %q is closed", c.name))
	}
	if err := c.ensureClientLocked(); err != nil {
		return nil, 0, err
	}
	if err := c.ensureTokenLocked(ctx); err != nil {
		return nil, 0, err
	}
	return c.client, c.gen, nil
}

// invalidate forgets the token of generation gen so that the next use logs
// in again (or re-reads the token file).
func (c *Conn) invalidate(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.authed = false
		c.tokenStamp = fileStamp{}
	}
}

func (c *Conn) canReauth() bool { return c.s.auth != authEnvToken }

func (c *Conn) ensureClientLocked() error {
	if c.client != nil {
		return nil
	}
	hc := cleanhttp.DefaultPooledClient()
	tr := hc.Transport.(*http.Transport)
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg := &api.Config{
		Address:      c.s.address,
		HttpClient:   hc,
		Timeout:      c.s.requestTimeout,
		MaxRetries:   0,
		CloneHeaders: true,
	}
	err := cfg.ConfigureTLS(&api.TLSConfig{
		CACert:        c.s.caFile,
		ClientCert:    c.s.clientCert,
		ClientKey:     c.s.clientKey,
		TLSServerName: c.s.serverName,
		Insecure:      c.s.skipVerify,
	})
	if err != nil {
		return plugin.Permanent(fmt.Errorf("configuring TLS for vault %q: %w", c.name, err))
	}
	cl, err := api.NewClient(cfg)
	if err != nil {
		return plugin.Permanent(fmt.Errorf("creating vault client %q: %w", c.name, err))
	}
	cl.ClearToken()
	cl.ClearNamespace()
	if c.s.namespace != "" {
		cl.SetNamespace(c.s.namespace)
	}
	c.httpClient = hc
	c.client = cl
	return nil
}

func (c *Conn) cloneWithoutToken() (*api.Client, error) {
	cl, err := c.client.Clone()
	if err != nil {
		return nil, fmt.Errorf("cloning vault client: %w", err)
	}
	cl.ClearToken()
	return cl, nil
}

func (c *Conn) ensureTokenLocked(ctx context.Context) error {
	switch c.s.auth {
	case authTokenFile:
		return c.readTokenFileLocked(ctx)
	case authAppRole:
		if c.authed {
			return nil
		}
		return c.loginAppRoleLocked(ctx)
	default:
		if c.authed {
			return nil
		}
		tok := os.Getenv("VAULT_TOKEN")
		if tok == "" {
			return plugin.Permanent(fmt.Errorf("vault %q has no auth block and VAULT_TOKEN is not set: add auth \"approle\" { ... } or auth \"token_file\" { ... } to the connection, or set VAULT_TOKEN", c.name))
		}
		c.client.SetToken(tok)
		c.authed = true
		c.gen++
		return nil
	}
}

func (c *Conn) readTokenFileLocked(ctx context.Context) error {
	fi, err := os.Stat(c.s.tokenFile)
	if err != nil {
		return fileErr(fmt.Errorf("reading the token file of vault %q: %w", c.name, err))
	}
	st := stampOf(fi)
	if c.authed && st == c.tokenStamp {
		return nil
	}
	b, err := os.ReadFile(c.s.tokenFile)
	if err != nil {
		return fileErr(fmt.Errorf("reading the token file of vault %q: %w", c.name, err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return fileErr(fmt.Errorf("the token file %s of vault %q is empty: is Vault Agent writing it?", c.s.tokenFile, c.name))
	}
	c.client.SetToken(tok)
	c.tokenStamp = st
	c.authed = true
	c.gen++
	zerolog.Ctx(ctx).Debug().Str("connection", c.name).Str("file", c.s.tokenFile).Msg("vault token read from file")
	return nil
}

// fileErr marks a failure to read a credential file: retried, since an
// agent may be rewriting the file, but reported with the file name.
func fileErr(err error) error { return &retryableError{err} }

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func (c *Conn) readRoleIDLocked() (string, error) {
	b, err := os.ReadFile(c.s.approle.RoleIDFile)
	if err != nil {
		if !c.roleID.IsZero() {
			return c.roleID.Reveal(), nil
		}
		return "", fileErr(fmt.Errorf("reading the role id of vault %q: %w", c.name, err))
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		if !c.roleID.IsZero() {
			return c.roleID.Reveal(), nil
		}
		return "", fileErr(fmt.Errorf("the role id file %s of vault %q is empty", c.s.approle.RoleIDFile, c.name))
	}
	c.roleID = secret.New(id)
	return id, nil
}

// readSecretIDLocked returns the secret id: re-read from its file when the
// file changed since it was last read (a wrapped secret id is unwrapped
// once), else the one kept in memory, so that logging in again works after
// the file was removed.
func (c *Conn) readSecretIDLocked(ctx context.Context) (string, error) {
	ar := c.s.approle
	if ar.SecretIDFile == "" {
		return "", nil
	}
	fi, err := os.Stat(ar.SecretIDFile)
	if err != nil || (stampOf(fi) == c.secretIDStamp && !c.secretID.IsZero()) {
		if !c.secretID.IsZero() {
			return c.secretID.Reveal(), nil
		}
		return "", fileErr(fmt.Errorf("reading the secret id of vault %q: %w", c.name, err))
	}
	b, err := os.ReadFile(ar.SecretIDFile)
	if err != nil {
		if !c.secretID.IsZero() {
			return c.secretID.Reveal(), nil
		}
		return "", fileErr(fmt.Errorf("reading the secret id of vault %q: %w", c.name, err))
	}
	raw := strings.TrimSpace(string(b))
	if raw == "" {
		if !c.secretID.IsZero() {
			return c.secretID.Reveal(), nil
		}
		return "", fileErr(fmt.Errorf("the secret id file %s of vault %q is empty", ar.SecretIDFile, c.name))
	}
	sid := raw
	if ar.SecretIDWrapped {
		sid, err = c.unwrapSecretIDLocked(ctx, raw)
		if err != nil {
			return "", err
		}
	}
	c.secretID = secret.New(sid)
	c.secretIDStamp = stampOf(fi)
	if ar.RemoveSecretIDFile {
		if err := os.Remove(ar.SecretIDFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			zerolog.Ctx(ctx).Warn().Str("connection", c.name).Str("file", ar.SecretIDFile).Err(err).Msg("could not remove the secret id file after reading it")
		}
	}
	return sid, nil
}

func (c *Conn) unwrapSecretIDLocked(ctx context.Context, wrappingToken string) (string, error) {
	ar := c.s.approle
	wc, err := c.cloneWithoutToken()
	if err != nil {
		return "", err
	}
	wc.SetToken(wrappingToken)
	look, err := wc.Logical().ReadWithContext(ctx, "sys/wrapping/lookup")
	if err != nil {
		return "", fmt.Errorf("looking up the wrapped secret id in %s (vault %q): %w", ar.SecretIDFile, c.name, sanitize(err))
	}
	var path string
	if look != nil {
		path, _ = look.Data["creation_path"].(string)
	}
	if !wrappingPathOK(path, ar.Mount, ar.SecretIDWrappingPath) {
		return "", plugin.Permanent(fmt.Errorf("the wrapping token in %s (vault %q) was created at %q, not by a secret id request of auth/%s: refusing it (it may have been substituted)", ar.SecretIDFile, c.name, path, ar.Mount))
	}
	sec, err := wc.Logical().UnwrapWithContext(ctx, "")
	if err != nil {
		return "", fmt.Errorf("unwrapping the secret id in %s (vault %q); a wrapping token works once, write a fresh one: %w", ar.SecretIDFile, c.name, sanitize(err))
	}
	var sid string
	if sec != nil {
		sid, _ = sec.Data["secret_id"].(string)
	}
	if sid == "" {
		return "", plugin.Permanent(fmt.Errorf("the wrapping token in %s (vault %q) does not wrap a secret id", ar.SecretIDFile, c.name))
	}
	return sid, nil
}

func wrappingPathOK(path, mount, want string) bool {
	if want != "" {
		return strings.Trim(path, "/") == strings.Trim(want, "/")
	}
	prefix := "auth/" + strings.Trim(mount, "/") + "/role/"
	return strings.HasPrefix(path, prefix) && strings.HasSuffix(path, "/secret-id") && len(path) > len(prefix)+len("/secret-id")
}

func (c *Conn) loginAppRoleLocked(ctx context.Context) error {
	roleID, err := c.readRoleIDLocked()
	if err != nil {
		return err
	}
	secretID, err := c.readSecretIDLocked(ctx)
	if err != nil {
		return err
	}
	lc, err := c.cloneWithoutToken()
	if err != nil {
		return err
	}
	body := map[string]any{"role_id": roleID}
	if secretID != "" {
		body["secret_id"] = secretID
	}
	mount := strings.Trim(c.s.approle.Mount, "/")
	sec, err := lc.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", body)
	if err != nil {
		return fmt.Errorf("logging in to vault %q with approle at auth/%s: %w", c.name, mount, sanitize(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return plugin.Permanent(fmt.Errorf("logging in to vault %q with approle at auth/%s: no token in the response", c.name, mount))
	}
	c.client.SetToken(sec.Auth.ClientToken)
	c.loginSecret = sec
	c.authed = true
	c.gen++
	c.logins++
	select {
	case c.loginCh <- struct{}{}:
	default:
	}
	zerolog.Ctx(ctx).Debug().Str("connection", c.name).Str("method", "approle").
		Dur("ttl", time.Duration(sec.Auth.LeaseDuration)*time.Second).Bool("renewable", sec.Auth.Renewable).
		Msg("logged in to vault")
	return nil
}

// Do calls fn with the logged-in client and retries it: once after logging
// in again when Vault answers 403 (an expired or revoked token), and with
// backoff on network errors, 5xx (a sealed or standby Vault), 412 and 429,
// until ctx is done. Without a deadline on ctx, retries stop after twice
// the request timeout. fn must be idempotent.
//
// Errors returned by fn that come from the Vault API are rewritten to a
// *ResponseError with a one-line message; non-retryable errors are marked
// with plugin.Permanent.
func (c *Conn) Do(ctx context.Context, fn func(*api.Client) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*c.s.requestTimeout)
		defer cancel()
	}
	reauthed := false
	return retry.Do(ctx, retry.Options{
		Backoff:     retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
		FitDeadline: true,
		OnRetry: func(attempt int, wait time.Duration, err error) {
			zerolog.Ctx(ctx).Warn().Str("connection", c.name).Int("attempt", attempt).Dur("retry_in", wait).Err(err).Msg("vault request failed; retrying")
		},
		GiveUp: func(why retry.Reason, attempts int, err error) error {
			switch why {
			case retry.Deadline:
				return fmt.Errorf("vault %q: giving up after %d attempts before the deadline: %w", c.name, attempts, err)
			case retry.Interrupted:
				return fmt.Errorf("vault %q: giving up after %d attempts: %w", c.name, attempts, err)
			}
			return err
		},
	}, func(ctx context.Context) error {
		for {
			cl, gen, err := c.authedClient(ctx)
			if err == nil {
				err = fn(cl)
				if err == nil {
					return nil
				}
				if !reauthed && c.canReauth() && isStatus(err, http.StatusForbidden) {
					reauthed = true
					c.invalidate(gen)
					zerolog.Ctx(ctx).Info().Str("connection", c.name).Msg("vault refused the token (403); logging in again and retrying once")
					continue
				}
			}
			return classify(ctx, err)
		}
	})
}

// Logins reports how many times the connection logged in (for tests and
// status).
func (c *Conn) Logins() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins
}

// Start runs the background renewal of tokens the connection obtains by
// logging in, until ctx is cancelled or Close is called. Starting twice is
// a no-op.
func (c *Conn) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("vault connection %q is closed", c.name)
	}
	if c.cancel != nil {
		return nil
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.loopDone = make(chan struct{})
	go c.renewLoop(ctx)
	return nil
}

// Close stops the renewal, revokes a token the connection obtained by
// logging in (best effort), and releases idle HTTP connections.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cancel, done := c.cancel, c.loopDone
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.auth == authAppRole && c.authed && c.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.client.Auth().Token().RevokeSelfWithContext(ctx, "")
		cancel()
		c.client.ClearToken()
		c.authed = false
	}
	if c.httpClient != nil {
		c.httpClient.CloseIdleConnections()
	}
	return nil
}
