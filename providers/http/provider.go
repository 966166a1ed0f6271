package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmespath-community/go-jmespath"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/command"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/providers"
	"github.com/rekeyhq/rekey/secret"
)

// Header is a request header whose value is a template.
type Header struct {
	Name  string
	Value *Template
}

// Path is a compiled JMESPath expression into a JSON response.
type Path struct {
	Text string
	jp   jmespath.JMESPath
}

// CompilePath compiles a JMESPath expression.
func CompilePath(text string) (*Path, error) {
	jp, err := jmespath.Compile(text)
	if err != nil {
		return nil, err
	}
	return &Path{Text: text, jp: jp}, nil
}

// MustPath compiles a JMESPath expression written in Go; it panics on a
// mistake.
func MustPath(text string) *Path {
	p, err := CompilePath(text)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Path) search(doc any) any {
	if p == nil {
		return nil
	}
	v, err := p.jp.Search(doc)
	if err != nil {
		return nil
	}
	return v
}

// Op is one configured request and what to read from its answer.
type Op struct {
	Method  string
	Path    *Template
	Headers []Header
	Body    *Template
	// Expect are the accepted statuses.
	Expect []int
	// Gone are statuses that mean the key no longer exists (delete,
	// deactivate): success for delete.
	Gone []int

	// ID, Value and CreatedAt read a key from the create answer, or from
	// each item of the list answer (ID, CreatedAt).
	ID        *Path
	Value     map[string]*Path
	CreatedAt *Path
	// ExpiresAt reads when a key expires (a time, null: never); ExpiresIn
	// reads how many seconds it has left when the answer is read (null:
	// never). At most one is set.
	ExpiresAt, ExpiresIn *Path
	// Items selects the list of keys in a list answer; nil is the answer
	// itself.
	Items *Path
	// Status reads an item's state; Active and Inactive are the values
	// (lowercase, JSON scalars as text) that mean each state.
	Status           *Path
	Active, Inactive []string
	// RotationID reads the rotation id from an item: a string, or a list
	// of strings (tags) of which the one starting with RotationIDPrefix.
	RotationID       *Path
	RotationIDPrefix string
	// Next reads the path or URL of the next page of a list; null or ""
	// ends the list.
	Next *Path
	// LastUsed reads the time of last use (null: never).
	LastUsed *Path
}

// Spec is a whole provider: the requests of each operation and the
// client that sends them.
type Spec struct {
	// Target is the provider's Target().
	Target string
	Client *Client
	// Headers are sent with every request (a request's own headers win).
	Headers                                              []Header
	Create, List, Delete, Deactivate, Activate, LastUsed *Op
	// CreateCommand, when set, makes keys instead of the Create request
	// (for APIs that cannot create keys); it follows the exec provider's
	// create contract.
	CreateCommand *command.Command
	MaxKeys       int
	UsageDelay    time.Duration
}

// Provider is a provider built from a Spec. It declares (providers.Declarer)
// exactly the optional abilities whose requests the Spec configures.
type Provider struct {
	providers.Optional
	s Spec
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Declarer = (*Provider)(nil)
)

// NewFromSpec returns the provider for s, with the optional abilities whose
// requests s configures: list (and capacity with max_keys), deactivate with
// activate, last_used.
func NewFromSpec(s Spec) providers.Provider {
	p := &Provider{s: s}
	p.Optional = providers.Optional{Kind: "http", Limit: s.MaxKeys, UsageDelay: s.UsageDelay}
	if s.Client != nil && s.Client.Kind != "" {
		p.Optional.Kind = s.Client.Kind
	}
	if s.List != nil {
		p.ListFunc = p.list
	}
	if s.Deactivate != nil && s.Activate != nil {
		p.DeactivateFunc = func(ctx context.Context, keyID string) error {
			return p.setState(ctx, "deactivate", s.Deactivate, keyID)
		}
		p.ActivateFunc = func(ctx context.Context, keyID string) error {
			return p.setState(ctx, "activate", s.Activate, keyID)
		}
	}
	if s.LastUsed != nil {
		p.LastUsedFunc = p.lastUsed
	}
	return p
}

// Target implements providers.Provider.
func (p *Provider) Target() string { return p.s.Target }

// Spec returns the provider's configuration (for tests and providers built
// on this one).
func (p *Provider) Spec() Spec { return p.s }

// build renders op into a request.
func (p *Provider) build(ctx context.Context, name string, op *Op, vars map[string]string) (*Request, error) {
	c := p.s.Client
	r := &Request{Op: name, Method: op.Method, Header: http.Header{}}
	escaped := make(map[string]string, len(vars))
	for k, v := range vars {
		escaped[k] = escapeAll(v)
	}
	path, err := op.Path.Render(escaped)
	if err != nil {
		return nil, plugin.Permanent(fmt.Errorf("%s provider of policy %q: %s: rendering the path: %w", c.Kind, c.Policy, name, err))
	}
	u, err := c.resolve(path)
	if err != nil {
		return nil, plugin.Permanent(fmt.Errorf("%s provider of policy %q: %s: %w", c.Kind, c.Policy, name, err))
	}
	r.URL = u
	hvars := vars
	needToken := false
	for _, h := range append(append([]Header(nil), p.s.Headers...), op.Headers...) {
		needToken = needToken || h.Value.Uses(VarToken)
	}
	if needToken && c.Token != nil {
		tok, err := c.Token.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.prefix(r), err)
		}
		hvars = make(map[string]string, len(vars)+1)
		for k, v := range vars {
			hvars[k] = v
		}
		hvars[VarToken] = tok
		r.Secrets = append(r.Secrets, tok)
	}
	for _, hs := range [][]Header{p.s.Headers, op.Headers} {
		for _, h := range hs {
			v, err := h.Value.Render(hvars)
			if err != nil {
				return nil, plugin.Permanent(c.Errorf(r, "rendering header %s: %w", h.Name, c.scrub(err, r.Secrets)))
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, plugin.Permanent(c.Errorf(r, "header %s would contain a line break or NUL", h.Name))
			}
			if v != h.Value.Text {
				r.Secrets = append(r.Secrets, v)
			}
			r.Header.Set(h.Name, v)
		}
	}
	if op.Body != nil {
		b, err := op.Body.Render(vars)
		if err != nil {
			return nil, plugin.Permanent(c.Errorf(r, "rendering the body: %w", err))
		}
		r.Body = []byte(b)
	}
	return r, nil
}

// resolve joins a rendered path (which may carry a query) to the base URL;
// an absolute URL is accepted only on the same origin.
func (c *Client) resolve(path string) (*url.URL, error) {
	rel, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("the rendered path does not parse as a URL path")
	}
	if rel.Scheme != "" || rel.Host != "" {
		if rel.Scheme != c.Base.Scheme || rel.Host != c.Base.Host {
			return nil, fmt.Errorf("the URL %s is not on the origin of base_url %s; rekey sends requests (and the admin credential) only there", Shown(rel), Shown(c.Base))
		}
		return rel, nil
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(c.Base.Scheme + "://" + c.Base.Host + strings.TrimSuffix(c.Base.EscapedPath(), "/") + path)
	if err != nil || u.Host != c.Base.Host {
		return nil, fmt.Errorf("the rendered path does not make a URL on base_url")
	}
	return u, nil
}

// call builds and sends op and returns the decoded JSON answer, or nil
// for an empty body. gone reports a status among op.Gone.
func (p *Provider) call(ctx context.Context, name string, op *Op, vars map[string]string, decode bool) (doc any, gone bool, err error) {
	r, err := p.build(ctx, name, op, vars)
	if err != nil {
		return nil, false, err
	}
	return p.send(ctx, r, op, decode)
}

func (p *Provider) send(ctx context.Context, r *Request, op *Op, decode bool) (any, bool, error) {
	c := p.s.Client
	resp, err := c.Do(ctx, r)
	if err != nil {
		return nil, false, err
	}
	defer clear(resp.Body)
	if Accepts(op.Gone, resp.Status) {
		return nil, true, nil
	}
	if !Accepts(op.Expect, resp.Status) {
		return nil, false, c.StatusError(r, resp, op.Expect)
	}
	if !decode {
		return nil, false, nil
	}
	var doc any
	if err := json.Unmarshal(resp.Body, &doc); err != nil {
		return nil, false, plugin.Permanent(c.Errorf(r, "status %d, but the response is not JSON (not shown: it may carry a secret)", resp.Status))
	}
	return doc, false, nil
}

func (p *Provider) baseVars() map[string]string {
	return map[string]string{VarPolicy: p.s.Client.Policy}
}

// Create implements providers.Provider: it sends the create request and
// reads the key from the answer. When the answer lacks a configured
// field, a key whose id is known is deleted at once; one whose id is not
// known carries the rotation id (or its creation time) for rekey's
// rollback to find it.
func (p *Provider) Create(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	if p.s.CreateCommand != nil {
		return p.runCreate(ctx, rot)
	}
	op := p.s.Create
	vars := p.baseVars()
	if rot.Policy != "" {
		vars[VarPolicy] = rot.Policy
	}
	vars[VarRotationID] = rot.ID
	vars[VarGeneration] = strconv.FormatInt(rot.Generation, 10)
	vars[VarKeyTTL], vars[VarExpiresAt], vars[VarExpiresAtUnix] = "", "", ""
	if rot.KeyTTL > 0 {
		end := time.Now().Add(rot.KeyTTL).UTC().Truncate(time.Second)
		vars[VarKeyTTL] = strconv.FormatInt(int64(rot.KeyTTL/time.Second), 10)
		vars[VarExpiresAt] = end.Format(time.RFC3339)
		vars[VarExpiresAtUnix] = strconv.FormatInt(end.Unix(), 10)
	}
	if uses(op, VarOldKeyID) {
		old, err := p.oldKeyID(ctx)
		if err != nil {
			return plugin.Key{}, err
		}
		vars[VarOldKeyID] = old
	}
	r, err := p.build(ctx, "create", op, vars)
	if err != nil {
		return plugin.Key{}, err
	}
	doc, _, err := p.send(ctx, r, op, true)
	if err != nil {
		return plugin.Key{}, err
	}
	c := p.s.Client
	id, ok := asString(op.ID.search(doc))
	if !ok || id == "" {
		return plugin.Key{}, plugin.Permanent(c.Errorf(r, "the response has no key id at %q; if the API made a key, %s", op.ID.Text, p.orphanHint()))
	}
	if err := checkID(id); err != nil {
		return plugin.Key{}, plugin.Permanent(c.Errorf(r, "the key id at %q: %w; %s", op.ID.Text, err, p.orphanHint()))
	}
	fields := make(secret.Fields, len(op.Value))
	var missing []string
	for name, path := range op.Value {
		v, ok := asString(path.search(doc))
		if !ok || v == "" {
			missing = append(missing, fmt.Sprintf("%s (at %q)", name, path.Text))
			continue
		}
		fields[name] = secret.New(v)
	}
	if len(missing) > 0 {
		err := c.Errorf(r, "the response lacks the value field %s; the key %s is useless without it", strings.Join(missing, ", "), secret.Mask(id))
		if derr := p.Delete(ctx, id); derr != nil {
			return plugin.Key{}, plugin.Permanent(fmt.Errorf("%w, and deleting it failed: %w; %s", err, derr, p.orphanHint()))
		}
		return plugin.Key{}, plugin.Permanent(fmt.Errorf("%w, so it was deleted", err))
	}
	created := time.Now().UTC()
	if op.CreatedAt != nil {
		if t, err := parseTime(op.CreatedAt.search(doc)); err == nil && !t.IsZero() {
			created = t
		}
	}
	expires, err := op.expiry(doc, time.Now())
	if err != nil {
		// The key exists and works; rekey counts its expiry from key_ttl.
		zerolog.Ctx(ctx).Warn().Str("target", p.s.Target).Str("key_id", secret.Mask(id)).Err(err).Msg("http: the create answer's expiry is unreadable")
	}
	return plugin.Key{ID: id, Value: fields, CreatedAt: created, ExpiresAt: expires}, nil
}

// expiry reads when the key in doc expires, from expires_at or
// expires_in (counted from now); zero when neither is configured or the
// answer says never.
func (op *Op) expiry(doc any, now time.Time) (time.Time, error) {
	switch {
	case op.ExpiresAt != nil:
		t, err := parseTime(op.ExpiresAt.search(doc))
		if err != nil {
			return time.Time{}, fmt.Errorf("expires_at at %q: %w", op.ExpiresAt.Text, err)
		}
		return t, nil
	case op.ExpiresIn != nil:
		var secs float64
		switch v := op.ExpiresIn.search(doc).(type) {
		case nil:
			return time.Time{}, nil
		case float64:
			secs = v
		case string:
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("expires_in at %q: not a number of seconds", op.ExpiresIn.Text)
			}
			secs = n
		default:
			return time.Time{}, fmt.Errorf("expires_in at %q: not a number of seconds", op.ExpiresIn.Text)
		}
		if secs <= 0 {
			return time.Time{}, nil
		}
		return now.Add(time.Duration(secs * float64(time.Second))).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, nil
}

// AcceptsKeyTTL implements providers.KeyTTLTaker: the create request
// takes a policy's key_ttl when it uses {{ .KeyTTL }}, {{ .ExpiresAt }}
// or {{ .ExpiresAtUnix }}; create_command receives it as REKEY_KEY_TTL.
func (p *Provider) AcceptsKeyTTL() bool {
	if p.s.CreateCommand != nil {
		return true
	}
	op := p.s.Create
	return op != nil && (uses(op, VarKeyTTL) || uses(op, VarExpiresAt) || uses(op, VarExpiresAtUnix))
}

func (p *Provider) orphanHint() string {
	switch {
	case p.s.List != nil && p.s.List.RotationID != nil:
		return "it carries the rotation id and is deleted when rekey rolls the rotation back"
	case p.s.List != nil && p.s.List.CreatedAt != nil:
		return "rekey's rollback deletes a key created after the rotation started that no record knows"
	}
	return "it cannot be found by rekey (no list request): check the API for a stray key and delete it"
}

func uses(op *Op, v string) bool {
	if op.Path.Uses(v) || op.Body.Uses(v) {
		return true
	}
	for _, h := range op.Headers {
		if h.Value.Uses(v) {
			return true
		}
	}
	return false
}

// oldKeyID is the one active key before a create, for APIs whose create
// names the key it replaces.
func (p *Provider) oldKeyID(ctx context.Context) (string, error) {
	keys, err := p.list(ctx)
	if err != nil {
		return "", err
	}
	var active []string
	for _, k := range keys {
		if k.Status == plugin.KeyActive {
			active = append(active, k.ID)
		}
	}
	if len(active) != 1 {
		return "", plugin.Permanent(fmt.Errorf("%s provider of policy %q: create uses .OldKeyID, but list shows %d active keys; it needs exactly one", p.s.Client.Kind, p.s.Client.Policy, len(active)))
	}
	return active[0], nil
}

// Delete implements providers.Provider; a key already gone (a status
// among the delete request's gone statuses) is not an error.
func (p *Provider) Delete(ctx context.Context, keyID string) error {
	vars := p.baseVars()
	vars[VarKeyID] = keyID
	_, _, err := p.call(ctx, "delete", p.s.Delete, vars, false)
	return err
}

func (p *Provider) setState(ctx context.Context, name string, op *Op, keyID string) error {
	vars := p.baseVars()
	vars[VarKeyID] = keyID
	_, gone, err := p.call(ctx, name, op, vars, false)
	if err == nil && gone {
		return fmt.Errorf("%s provider of policy %q: %s key %s: %w", p.s.Client.Kind, p.s.Client.Policy, name, secret.Mask(keyID), plugin.ErrNotFound)
	}
	return err
}

// maxPages bounds a paginated list.
const maxPages = 1000

func (p *Provider) list(ctx context.Context) ([]plugin.KeyInfo, error) {
	op := p.s.List
	c := p.s.Client
	r, err := p.build(ctx, "list", op, p.baseVars())
	if err != nil {
		return nil, err
	}
	var out []plugin.KeyInfo
	seen := map[string]bool{}
	for page := 0; ; page++ {
		doc, _, err := p.send(ctx, r, op, true)
		if err != nil {
			return nil, err
		}
		items := doc
		if op.Items != nil {
			items = op.Items.search(doc)
		}
		arr, ok := items.([]any)
		if !ok {
			return nil, plugin.Permanent(c.Errorf(r, "the response has no list of keys at %q", pathText(op.Items, "@")))
		}
		for i, it := range arr {
			k, err := p.keyInfo(op, it)
			if err != nil {
				return nil, plugin.Permanent(c.Errorf(r, "key %d: %w", len(out)+i, err))
			}
			if !seen[k.ID] {
				seen[k.ID] = true
				out = append(out, k)
			}
		}
		if op.Next == nil {
			return out, nil
		}
		next, _ := asString(op.Next.search(doc))
		if next == "" {
			return out, nil
		}
		if page+1 >= maxPages {
			return nil, plugin.Permanent(c.Errorf(r, "more than %d pages", maxPages))
		}
		u, err := c.resolveNext(r.URL, next)
		if err != nil {
			return nil, plugin.Permanent(c.Errorf(r, "the next page: %w", err))
		}
		nr := *r
		nr.URL = u
		r = &nr
	}
}

// resolveNext resolves a next-page reference against the current URL; it
// must stay on the same origin.
func (c *Client) resolveNext(cur *url.URL, next string) (*url.URL, error) {
	ref, err := url.Parse(next)
	if err != nil {
		return nil, errors.New("the next page reference does not parse as a URL")
	}
	u := cur.ResolveReference(ref)
	if u.Scheme != c.Base.Scheme || u.Host != c.Base.Host {
		return nil, fmt.Errorf("the next page %s is not on the origin of base_url; rekey sends requests (and the admin credential) only there", Shown(u))
	}
	return u, nil
}

func pathText(p *Path, def string) string {
	if p == nil {
		return def
	}
	return p.Text
}

func (p *Provider) keyInfo(op *Op, it any) (plugin.KeyInfo, error) {
	id, ok := asString(op.ID.search(it))
	if !ok || id == "" {
		return plugin.KeyInfo{}, fmt.Errorf("no key id at %q", op.ID.Text)
	}
	if err := checkID(id); err != nil {
		return plugin.KeyInfo{}, err
	}
	k := plugin.KeyInfo{ID: id, Status: plugin.KeyActive}
	if op.Status != nil {
		v := scalarText(op.Status.search(it))
		switch {
		case contains(op.Active, v):
		case contains(op.Inactive, v):
			k.Status = plugin.KeyInactive
		default:
			return plugin.KeyInfo{}, fmt.Errorf("key %s has a status at %q that is neither in active_values nor in inactive_values", secret.Mask(id), op.Status.Text)
		}
	}
	if op.CreatedAt != nil {
		t, err := parseTime(op.CreatedAt.search(it))
		if err != nil {
			return plugin.KeyInfo{}, fmt.Errorf("key %s: created_at at %q: %w", secret.Mask(id), op.CreatedAt.Text, err)
		}
		k.CreatedAt = t
	}
	exp, err := op.expiry(it, time.Now())
	if err != nil {
		return plugin.KeyInfo{}, fmt.Errorf("key %s: %w", secret.Mask(id), err)
	}
	k.ExpiresAt = exp
	if op.RotationID != nil {
		k.RotationID = rotationID(op.RotationID.search(it), op.RotationIDPrefix)
	}
	return k, nil
}

func rotationID(v any, prefix string) string {
	switch v := v.(type) {
	case string:
		if s, ok := strings.CutPrefix(v, prefix); ok {
			return s
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && prefix != "" {
				if id, ok := strings.CutPrefix(s, prefix); ok {
					return id
				}
			}
		}
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// scalarText renders a JSON scalar as text: strings as they are, true,
// false, numbers; anything else "".
func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

func asString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// jsDate is JavaScript's Date.prototype.toString, as Express Gateway
// writes createdAt: "Fri Dec 04 2026 18:06:49 GMT+0000 (Coordinated
// Universal Time)".
const jsDate = "Mon Jan 02 2006 15:04:05 GMT-0700"

// parseTime reads a time: RFC 3339, RFC 1123, JavaScript's Date string,
// or a number of seconds (milliseconds above 10^11) since 1970. null is
// the zero time.
func parseTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case float64:
		if v <= 0 {
			return time.Time{}, nil
		}
		if v > 1e11 {
			return time.UnixMilli(int64(v)).UTC(), nil
		}
		return time.Unix(int64(v), 0).UTC(), nil
	case string:
		s := strings.TrimSpace(v)
		if i := strings.Index(s, " ("); i > 0 {
			s = s[:i]
		}
		for _, layout := range []string{time.RFC3339Nano, time.RFC1123Z, time.RFC1123, jsDate} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return parseTime(n)
		}
	}
	return time.Time{}, errors.New("not a time (RFC 3339, RFC 1123, a JavaScript date or seconds since 1970)")
}

// checkID refuses key ids that could not be passed back safely.
func checkID(id string) error {
	if len(id) > 512 {
		return errors.New("the key id is longer than 512 bytes")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("the key id holds a control character")
		}
	}
	return nil
}

func (p *Provider) lastUsed(ctx context.Context, keyID string) (time.Time, error) {
	op := p.s.LastUsed
	vars := p.baseVars()
	vars[VarKeyID] = keyID
	r, err := p.build(ctx, "last_used", op, vars)
	if err != nil {
		return time.Time{}, err
	}
	doc, _, err := p.send(ctx, r, op, true)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseTime(op.LastUsed.search(doc))
	if err != nil {
		return time.Time{}, plugin.Permanent(p.s.Client.Errorf(r, "last_used at %q: %w", op.LastUsed.Text, err))
	}
	return t, nil
}

// DefaultCommandTimeout bounds create_command.
const DefaultCommandTimeout = time.Minute

// runCreate runs create_command, which prints the key as the exec
// provider's create does: {"id": ..., "value": {...}, "created_at": ...}.
func (p *Provider) runCreate(ctx context.Context, rot plugin.Rotation) (plugin.Key, error) {
	c := p.s.Client
	policy := rot.Policy
	if policy == "" {
		policy = c.Policy
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s provider of policy %q: create_command: %w", c.Kind, c.Policy, fmt.Errorf(format, args...))
	}
	env := []string{
		"REKEY_POLICY=" + policy,
		"REKEY_ROTATION_ID=" + rot.ID,
		"REKEY_GENERATION=" + strconv.FormatInt(rot.Generation, 10),
	}
	if rot.KeyTTL > 0 {
		env = append(env, "REKEY_KEY_TTL="+strconv.FormatInt(int64(rot.KeyTTL/time.Second), 10))
	}
	out, err := p.s.CreateCommand.Run(ctx, env)
	defer clear(out)
	if err != nil {
		return plugin.Key{}, fail("%w", err)
	}
	var res struct {
		ID        string            `json:"id"`
		Value     map[string]string `json:"value"`
		CreatedAt string            `json:"created_at"`
		ExpiresAt string            `json:"expires_at"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return plugin.Key{}, plugin.Permanent(fail("stdout is not the JSON object {\"id\", \"value\", \"created_at\"} (not shown: it may carry a secret)"))
	}
	if res.ID == "" || checkID(res.ID) != nil {
		return plugin.Key{}, plugin.Permanent(fail("the output has no usable \"id\"; %s", p.orphanHint()))
	}
	if len(res.Value) == 0 {
		return plugin.Key{}, plugin.Permanent(fail("the output has no \"value\" fields for key %s; %s", secret.Mask(res.ID), p.orphanHint()))
	}
	fields := make(secret.Fields, len(res.Value))
	for name, v := range res.Value {
		if name == "" || v == "" {
			return plugin.Key{}, plugin.Permanent(fail("a \"value\" field of key %s is empty; %s", secret.Mask(res.ID), p.orphanHint()))
		}
		fields[name] = secret.New(v)
	}
	created := time.Now().UTC()
	if res.CreatedAt != "" {
		if t, err := parseTime(res.CreatedAt); err == nil && !t.IsZero() {
			created = t
		}
	}
	var expires time.Time
	if res.ExpiresAt != "" {
		t, err := parseTime(res.ExpiresAt)
		if err != nil {
			return plugin.Key{}, plugin.Permanent(fail("\"expires_at\" of key %s: %w; %s", secret.Mask(res.ID), err, p.orphanHint()))
		}
		expires = t
	}
	return plugin.Key{ID: res.ID, Value: fields, CreatedAt: created, ExpiresAt: expires}, nil
}
