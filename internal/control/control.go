// Package control is the daemon's local control API: HTTP over a unix
// socket in the state directory (0600, owned by the service user), used by
// `rekey rotate`, `rekey status` and `rekey plan` while the daemon runs, so
// that one engine owns the journal and its lock.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/rotator"
)

// SocketName is the control socket's file name inside state_dir.
const SocketName = "rekey.sock"

// SocketPath returns the control socket path for a state directory.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// RotateRequest asks the daemon to rotate policies now.
type RotateRequest struct {
	Policies  []string `json:"policies"`
	All       bool     `json:"all"`
	UntilDone bool     `json:"until_done"`
	// Compromised, Note and ForceRevoke are rotator.RotateOptions'.
	Compromised bool   `json:"compromised,omitempty"`
	Note        string `json:"note,omitempty"`
	ForceRevoke bool   `json:"force_revoke,omitempty"`
}

// Message is one line of a rotate response stream: an event, or the final
// outcome of one policy.
type Message struct {
	Event   *rotator.Event `json:"event,omitempty"`
	Outcome *Outcome       `json:"outcome,omitempty"`
}

// Outcome is a serialisable rotator.Outcome.
type Outcome struct {
	Policy     string          `json:"policy"`
	RotationID string          `json:"rotation_id,omitempty"`
	Step       string          `json:"step"`
	Result     rotator.Verdict `json:"result"`
	Error      string          `json:"error,omitempty"`
	// Code identifies Error's sentinel (see Err).
	Code string `json:"code,omitempty"`
	Next string `json:"next,omitempty"`
	// Joined is set when the request continued a rotation already in
	// flight instead of starting one.
	Joined bool `json:"joined,omitempty"`
	// Pending lists the steps still to come.
	Pending []string `json:"pending,omitempty"`
	// Compromise is the report of a compromised rotation.
	Compromise *rotator.CompromiseReport `json:"compromise,omitempty"`
}

// Err returns the outcome's error, matching the sentinel errors its code
// names with errors.Is; nil when the outcome has no error.
func (o Outcome) Err() error {
	if o.Error == "" {
		return nil
	}
	return &RemoteError{Code: o.Code, Message: o.Error}
}

// FromOutcome converts an engine outcome.
func FromOutcome(o rotator.Outcome, err error) Outcome {
	out := Outcome{Policy: o.Policy, RotationID: o.RotationID, Step: string(o.Step), Result: o.Result, Joined: o.Joined, Compromise: o.Compromise}
	for _, s := range o.Pending {
		out.Pending = append(out.Pending, string(s))
	}
	if err == nil {
		err = o.Err
	}
	if err != nil {
		out.Error = err.Error()
		out.Code = ErrorCode(err)
	}
	if !o.Next.IsZero() {
		out.Next = o.Next.Format(time.RFC3339)
	}
	return out
}

// Server serves the control API for one engine.
type Server struct {
	Engine *rotator.Engine
	// Scope, when set, gives the context every rotation asked through the
	// socket runs in. The daemon of a shared journal (journal "etcd") ends
	// it when the instance loses ownership of the policies, so that such a
	// rotation stops before its next external call, as the scheduler's do.
	Scope func(ctx context.Context) (context.Context, context.CancelFunc)
	// Lost, when set, reports why the daemon's journal is lost (nil while
	// it is not): status, plan and rotate then answer 503 with the code
	// journal_lost instead of showing a state nothing schedules any more.
	Lost func() error
	srv  *http.Server
	// handlers counts requests being answered; Serve returns only after
	// they all returned, so that a rotation started through the socket
	// never runs after its daemon closed what it uses.
	handlers sync.WaitGroup
}

// Listen creates the socket (removing a stale one) with mode 0600. On
// Windows (10 and later support AF_UNIX sockets) access is governed by the
// state directory's ACL instead of a file mode.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: another rekey daemon is running", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on control socket: %w", err)
	}
	if runtime.GOOS == "windows" {
		return ln, nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting control socket: %w", err)
	}
	return ln, nil
}

// Handler returns the control API's HTTP handler. Requests are counted
// until they return (see Serve).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/plan", s.plan)
	mux.HandleFunc("POST /v1/rotate", s.rotate)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		mux.ServeHTTP(w, r)
	})
}

// Serve answers requests on ln until ctx is cancelled. Requests get
// contexts derived from ctx (and its logger): cancelling ctx asks the
// rotations they run to reach a safe point, and Serve returns once every
// request has returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		<-errc
		s.handlers.Wait()
		return nil
	case err := <-errc:
		s.handlers.Wait()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Error codes carried across the socket, so that a client maps a daemon's
// error back to the sentinel it wraps instead of matching its text.
const (
	CodeUnknownPolicy = "unknown_policy"
	CodeLocked        = "locked"
	CodeKeyLimit      = "key_limit"
	CodeConflict      = "conflict"
	CodeCanceled      = "canceled"
	CodeDeadline      = "deadline_exceeded"
	CodeJournalLost   = "journal_lost"
)

var codes = []struct {
	code string
	err  error
}{
	{CodeUnknownPolicy, rotator.ErrUnknownPolicy},
	{CodeLocked, rotator.ErrLocked},
	{CodeKeyLimit, plugin.ErrLimit},
	{CodeConflict, plugin.ErrConflict},
	{CodeCanceled, context.Canceled},
	{CodeDeadline, context.DeadlineExceeded},
	{CodeJournalLost, rotator.ErrJournalLost},
}

// ErrorCode returns the code of the first sentinel err wraps, or "".
func ErrorCode(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// RemoteError is an error reported by the daemon. errors.Is matches it
// against the sentinel its code names.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinel error the code names, if any.
func (e *RemoteError) Unwrap() error {
	for _, c := range codes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

// errorReply is the body of a reply other than 200.
type errorReply struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorReply{Error: err.Error(), Code: ErrorCode(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// refuseLost answers 503 journal_lost when the daemon's journal is lost.
func (s *Server) refuseLost(w http.ResponseWriter) bool {
	if s.Lost == nil {
		return false
	}
	err := s.Lost()
	if err == nil {
		return false
	}
	if !errors.Is(err, rotator.ErrJournalLost) {
		err = fmt.Errorf("%w: %w", rotator.ErrJournalLost, err)
	}
	writeError(w, http.StatusServiceUnavailable, err)
	return true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.refuseLost(w) {
		return
	}
	st, err := s.Engine.Status(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	if s.refuseLost(w) {
		return
	}
	p, err := s.Engine.Plan(r.Context(), r.URL.Query()["policy"])
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, rotator.ErrUnknownPolicy) {
			code = http.StatusNotFound
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	if s.refuseLost(w) {
		return
	}
	var req RotateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding request: %w", err))
		return
	}
	names := req.Policies
	if req.All {
		names = s.Engine.PolicyNames()
	}
	for _, n := range names {
		if _, ok := s.Engine.Policy(n); !ok {
			writeError(w, http.StatusNotFound, fmt.Errorf("%w: %q", rotator.ErrUnknownPolicy, n))
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	stream := &lineWriter{w: w}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	defer s.Engine.AddObserver(rotator.ObserverFunc(func(_ context.Context, e rotator.Event) {
		if want[e.Policy] {
			stream.send(Message{Event: &e})
		}
	}))()
	opts := rotator.RotateOptions{UntilDone: req.UntilDone, Compromised: req.Compromised, Note: req.Note, ForceRevoke: req.ForceRevoke}
	ctx := r.Context()
	if s.Scope != nil {
		var cancel context.CancelFunc
		ctx, cancel = s.Scope(ctx)
		defer cancel()
	}
	s.Engine.RotateEach(ctx, names, opts, func(i int, o rotator.Outcome, err error) {
		out := FromOutcome(o, err)
		if out.Policy == "" {
			out.Policy = names[i]
		}
		stream.send(Message{Outcome: &out})
	})
	stream.close()
}

// lineWriter writes NDJSON lines to a response until closed; events that
// arrive after the request finished are dropped. It is safe for
// concurrent use.
type lineWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	closed bool
}

func (l *lineWriter) send(m Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	b, _ := json.Marshal(m)
	_, _ = l.w.Write(append(b, '\n'))
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (l *lineWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// Client talks to a running daemon.
type Client struct {
	http *http.Client
}

// Dial returns a client if a daemon answers on the socket, or nil.
func Dial(stateDir string) *Client {
	path := SocketPath(stateDir)
	c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
	if err != nil {
		return nil
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{http: &http.Client{Transport: tr}}
}

// do sends a request; a reply other than 200 becomes the daemon's error.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e errorReply
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("daemon: %w", &RemoteError{Code: e.Code, Message: e.Error})
	}
	return resp, nil
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://rekey"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Status asks the daemon for every policy's status.
func (c *Client) Status(ctx context.Context) ([]rotator.PolicyStatus, error) {
	var out []rotator.PolicyStatus
	return out, c.get(ctx, "/v1/status", &out)
}

// Plan asks the daemon for the plan of the named policies (all if none).
func (c *Client) Plan(ctx context.Context, names []string) ([]rotator.PlanEntry, error) {
	q := ""
	for i, n := range names {
		if i == 0 {
			q = "?"
		} else {
			q += "&"
		}
		q += "policy=" + n
	}
	var out []rotator.PlanEntry
	return out, c.get(ctx, "/v1/plan"+q, &out)
}

// Rotate asks the daemon to rotate and calls fn for each streamed message.
func (c *Client) Rotate(ctx context.Context, req RotateRequest, fn func(Message)) error {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://rekey/v1/rotate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	outcomes := 0
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("decoding daemon reply: %w", err)
		}
		if m.Outcome != nil {
			outcomes++
		}
		fn(m)
	}
	switch err := sc.Err(); {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	case outcomes < len(req.Policies):
		return fmt.Errorf("%w: the reply ended after %d of %d outcomes", ErrConnectionLost, outcomes, len(req.Policies))
	}
	return nil
}

// ErrConnectionLost reports a rotation whose reply stream broke off before
// every policy's outcome arrived: the daemon stopped or crashed while it
// rotated. The rotations themselves are in the journal; the daemon's next
// start finishes or rolls them back.
var ErrConnectionLost = errors.New("the daemon closed the connection before the rotation ended")
