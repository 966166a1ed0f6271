// Package kongemu is a small emulator of the Kong Admin API's consumers
// and key-auth credentials, for tests of the kong provider: Kong itself
// cannot run on the test machines (no package, no container engine). It
// listens on 127.0.0.1 only and is held to Kong's documented behaviour
// (Admin API reference, Kong Gateway 3.x):
//
//   - GET/POST /consumers, GET/DELETE /consumers/{username or id};
//   - POST /consumers/{c}/key-auth (JSON or form; key generated when
//     absent; tags; ttl in seconds, after which the credential is gone;
//     0 is no ttl). Every answer that shows a credential with a ttl shows
//     the whole seconds it has left, as Kong's database layer computes
//     them (FLOOR of the stored expiry minus the current time), not the
//     ttl it was created with:
//     201 with the credential; 404 {"message":"Not found"} for a missing
//     consumer; 409 for a key that exists already; 400 for bad input;
//   - GET /consumers/{c}/key-auth and GET /key-auths: pages of "size"
//     (default 100, at most 1000) with "next" holding the path of the next
//     page ("offset"), or null; "tags" filters (a,b: all; a/b: any);
//   - GET /consumers/{c}/key-auth/{id or key}; DELETE
//     /consumers/{c}/key-auth/{id}: 204, also when the credential does not
//     exist (Kong's deletes are idempotent), 404 for a missing consumer;
//   - workspaces: every path may be prefixed with /{workspace}; entities
//     of one workspace are invisible from another; an unknown workspace is
//     404;
//   - RBAC: with a token set, requests without the Kong-Admin-Token header
//     get 401, with a wrong one 401, and a token limited to reads gets 403
//     on writes;
//   - Kong Konnect: the same under /v2/control-planes/{id}/core-entities,
//     with the token as "Authorization: Bearer"; pages also carry "offset";
//   - the proxy: GET /proxy/* with the key in the "apikey" header answers
//     200 for a live credential, 401 otherwise ("No API key found in
//     request", "Invalid authentication credentials").
//
// Every Admin API request is written to a ledger.
package kongemu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running emulator.
type Server struct {
	// URL is the Admin API root, such as http://127.0.0.1:41234.
	URL string

	srv *httptest.Server
	mu  sync.Mutex
	// workspaces: name -> consumers ("default" always exists).
	ws        map[string]*workspace
	token     string
	readToken string
	ledger    []Entry
	now       func() time.Time
	seq       int
}

type workspace struct {
	consumers []*consumer
	creds     []*Credential
}

type consumer struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Created  int64  `json:"created_at"`
}

// Credential is a key-auth credential.
type Credential struct {
	ID        string            `json:"id"`
	Key       string            `json:"key"`
	Consumer  map[string]string `json:"consumer"`
	CreatedAt int64             `json:"created_at"`
	Tags      []string          `json:"tags"`
	TTL       *int              `json:"ttl"`
	seq       int
	expires   time.Time
}

// shown is a credential as the Admin API shows it at now: ttl is the
// whole seconds left.
func shown(k *Credential, now time.Time) *Credential {
	c := *k
	if !k.expires.IsZero() {
		left := int(k.expires.Sub(now) / time.Second)
		c.TTL = &left
	}
	return &c
}

func (s *Server) shownAll(ks []*Credential) []*Credential {
	out := make([]*Credential, len(ks))
	for i, k := range ks {
		out[i] = shown(k, s.now())
	}
	return out
}

// Entry is one Admin API request and its answer.
type Entry struct {
	Method, Path string
	Status       int
}

// Start starts an emulator, stopped when the test ends.
func Start(t testing.TB) *Server {
	s := &Server{ws: map[string]*workspace{"default": {}}, now: time.Now}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetToken turns RBAC on: admin is a token that may do anything, read
// one that may only read.
func (s *Server) SetToken(admin, read string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.readToken = admin, read
}

// AddWorkspace makes a workspace.
func (s *Server) AddWorkspace(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ws[name] = &workspace{}
}

// SetClock replaces the clock (for ttl).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// AddConsumer makes a consumer in a workspace ("" is default) and returns
// its id.
func (s *Server) AddConsumer(ws, username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.ws[orDefault(ws)]
	c := &consumer{ID: uuid(), Username: username, Created: s.now().Unix()}
	w.consumers = append(w.consumers, c)
	return c.ID
}

// Credentials returns the live key-auth credentials of a consumer.
func (s *Server) Credentials(ws, consumer string) []Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.ws[orDefault(ws)]
	c := w.consumer(consumer)
	if c == nil {
		return nil
	}
	var out []Credential
	for _, k := range s.live(w) {
		if k.Consumer["id"] == c.ID {
			out = append(out, *k)
		}
	}
	return out
}

// Ledger returns the requests so far.
func (s *Server) Ledger() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.ledger...)
}

func orDefault(ws string) string {
	if ws == "" {
		return "default"
	}
	return ws
}

func (w *workspace) consumer(ref string) *consumer {
	for _, c := range w.consumers {
		if c.ID == ref || c.Username == ref {
			return c
		}
	}
	return nil
}

func (s *Server) live(w *workspace) []*Credential {
	now := s.now()
	var out []*Credential
	for _, k := range w.creds {
		if k.expires.IsZero() || now.Before(k.expires) {
			out = append(out, k)
		}
	}
	return out
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &recorder{ResponseWriter: rw, status: http.StatusOK}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if parts[0] == "proxy" {
		s.proxy(w, r)
		return
	}
	defer func() {
		s.ledger = append(s.ledger, Entry{Method: r.Method, Path: r.URL.RequestURI(), Status: w.status})
	}()
	if len(parts) >= 4 && parts[0] == "v2" && parts[1] == "control-planes" && parts[3] == "core-entities" {
		if s.token == "" || r.Header.Get("Authorization") != "Bearer "+s.token {
			message(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		parts = parts[4:]
	} else if s.token != "" {
		got := r.Header.Get("Kong-Admin-Token")
		switch {
		case got == "" || (got != s.token && got != s.readToken):
			message(w, http.StatusUnauthorized, "Invalid credentials. Token or User credentials required")
			return
		case got == s.readToken && r.Method != http.MethodGet:
			message(w, http.StatusForbidden, "You do not have permissions to create this resource")
			return
		}
	}
	ws := s.ws["default"]
	if len(parts) > 0 && parts[0] != "consumers" && parts[0] != "key-auths" {
		var ok bool
		if ws, ok = s.ws[parts[0]]; !ok {
			message(w, http.StatusNotFound, "Not found")
			return
		}
		parts = parts[1:]
	}
	switch {
	case len(parts) == 1 && parts[0] == "key-auths" && r.Method == http.MethodGet:
		s.list(w, r, ws, nil)
	case len(parts) == 1 && parts[0] == "consumers" && r.Method == http.MethodPost:
		var body struct {
			Username string `json:"username"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Username == "" {
			message(w, http.StatusBadRequest, "schema violation (username: required)")
			return
		}
		if ws.consumer(body.Username) != nil {
			message(w, http.StatusConflict, "UNIQUE violation detected on '{username=\""+body.Username+"\"}'")
			return
		}
		c := &consumer{ID: uuid(), Username: body.Username, Created: s.now().Unix()}
		ws.consumers = append(ws.consumers, c)
		write(w, http.StatusCreated, c)
	case len(parts) >= 2 && parts[0] == "consumers":
		c := ws.consumer(parts[1])
		if c == nil {
			message(w, http.StatusNotFound, "Not found")
			return
		}
		switch {
		case len(parts) == 2 && r.Method == http.MethodGet:
			write(w, http.StatusOK, c)
		case len(parts) == 2 && r.Method == http.MethodDelete:
			for i, x := range ws.consumers {
				if x == c {
					ws.consumers = append(ws.consumers[:i], ws.consumers[i+1:]...)
				}
			}
			kept := ws.creds[:0]
			for _, k := range ws.creds {
				if k.Consumer["id"] != c.ID {
					kept = append(kept, k)
				}
			}
			ws.creds = kept
			w.WriteHeader(http.StatusNoContent)
		case len(parts) == 3 && parts[2] == "key-auth" && r.Method == http.MethodPost:
			s.create(w, r, ws, c)
		case len(parts) == 3 && parts[2] == "key-auth" && r.Method == http.MethodGet:
			s.list(w, r, ws, c)
		case len(parts) == 4 && parts[2] == "key-auth" && r.Method == http.MethodGet:
			for _, k := range s.live(ws) {
				if k.Consumer["id"] == c.ID && (k.ID == parts[3] || k.Key == parts[3]) {
					write(w, http.StatusOK, shown(k, s.now()))
					return
				}
			}
			message(w, http.StatusNotFound, "Not found")
		case len(parts) == 4 && parts[2] == "key-auth" && r.Method == http.MethodDelete:
			for i, k := range ws.creds {
				if k.Consumer["id"] == c.ID && k.ID == parts[3] {
					ws.creds = append(ws.creds[:i], ws.creds[i+1:]...)
					break
				}
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			message(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	default:
		message(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, ws *workspace, c *consumer) {
	var body struct {
		Key  string   `json:"key"`
		Tags []string `json:"tags"`
		TTL  *int     `json:"ttl"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			message(w, http.StatusBadRequest, "Cannot parse JSON body")
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			message(w, http.StatusBadRequest, "Cannot parse form body")
			return
		}
		body.Key = r.PostForm.Get("key")
		body.Tags = r.PostForm["tags[]"]
		if v := r.PostForm.Get("ttl"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				message(w, http.StatusBadRequest, "schema violation (ttl: expected an integer)")
				return
			}
			body.TTL = &n
		}
	}
	for _, tag := range body.Tags {
		if tag == "" || strings.ContainsAny(tag, ",/") || strings.ContainsFunc(tag, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			message(w, http.StatusBadRequest, "schema violation (tags: invalid tag: must be printable ASCII without , or /)")
			return
		}
	}
	if body.TTL != nil && (*body.TTL < 0 || *body.TTL > 100000000) {
		message(w, http.StatusBadRequest, "schema violation (ttl: value should be between 0 and 100000000)")
		return
	}
	if body.Key == "" {
		body.Key = rand.Text()
	}
	for _, w2 := range s.ws {
		for _, k := range s.live(w2) {
			if k.Key == body.Key {
				message(w, http.StatusConflict, "UNIQUE violation detected on '{key=\""+body.Key+"\"}'")
				return
			}
		}
	}
	s.seq++
	k := &Credential{ID: uuid(), Key: body.Key, Consumer: map[string]string{"id": c.ID}, CreatedAt: s.now().Unix(), Tags: body.Tags, TTL: body.TTL, seq: s.seq}
	if body.TTL != nil && *body.TTL > 0 {
		k.expires = s.now().Add(time.Duration(*body.TTL) * time.Second)
	}
	ws.creds = append(ws.creds, k)
	write(w, http.StatusCreated, shown(k, s.now()))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, ws *workspace, c *consumer) {
	q := r.URL.Query()
	size := 100
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			message(w, http.StatusBadRequest, "size must be an integer between 1 and 1000")
			return
		}
		size = n
	}
	var all []*Credential
	for _, k := range s.live(ws) {
		if (c == nil || k.Consumer["id"] == c.ID) && tagsMatch(k.Tags, q.Get("tags")) {
			all = append(all, k)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	start := 0
	if off := q.Get("offset"); off != "" {
		n, err := strconv.Atoi(off)
		if err != nil || n < 0 {
			message(w, http.StatusBadRequest, "invalid offset")
			return
		}
		start = min(n, len(all))
	}
	end := min(start+size, len(all))
	page := map[string]any{"data": nonNil(s.shownAll(all[start:end])), "next": nil}
	if end < len(all) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("offset", strconv.Itoa(end))
		page["next"] = r.URL.Path + "?" + nq.Encode()
		page["offset"] = strconv.Itoa(end)
	}
	write(w, http.StatusOK, page)
}

func nonNil(ks []*Credential) []*Credential {
	if ks == nil {
		return []*Credential{}
	}
	return ks
}

// tagsMatch implements Kong's tags filter: "a,b" needs all, "a/b" any.
func tagsMatch(have []string, filter string) bool {
	if filter == "" {
		return true
	}
	has := func(t string) bool {
		for _, h := range have {
			if h == t {
				return true
			}
		}
		return false
	}
	if strings.Contains(filter, "/") {
		for _, t := range strings.Split(filter, "/") {
			if has(t) {
				return true
			}
		}
		return false
	}
	for _, t := range strings.Split(filter, ",") {
		if !has(t) {
			return false
		}
	}
	return true
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("apikey")
	if key == "" {
		message(w, http.StatusUnauthorized, "No API key found in request")
		return
	}
	for _, ws := range s.ws {
		for _, k := range s.live(ws) {
			if k.Key == key {
				write(w, http.StatusOK, map[string]string{"consumer": k.Consumer["id"]})
				return
			}
		}
	}
	message(w, http.StatusUnauthorized, "Invalid authentication credentials")
}

func message(w http.ResponseWriter, code int, msg string) {
	write(w, code, map[string]string{"message": msg})
}

func write(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
