// Package awsemu is a small AWS emulator for integration tests. One HTTP
// endpoint on 127.0.0.1 serves IAM access keys, STS GetCallerIdentity and
// Secrets Manager versions and staging labels, and verifies the SigV4
// signature of every request against the keys it issued.
//
// Every behaviour it emulates comes from the AWS API references (IAM API
// Reference 2010-05-08, STS API Reference 2011-06-15, Secrets Manager API
// Reference 2017-10-17, and their "Common Errors" pages); the comment next to
// each rule names the action or section it comes from. It is as late and
// as strict as AWS by default: access key state changes reach
// authentication after a seeded random delay, GetAccessKeyLastUsed is late
// and rounded down to the minute, empty lists are omitted, and Secrets
// Manager's input limits, deletion scheduling and version quota apply
// (consistency.go, secretsmanager.go). It is test infrastructure: state
// lives in memory and is lost on Close.
package awsemu

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configures an emulator.
type Options struct {
	// AccountID is the AWS account of every ARN; default "123456789012".
	AccountID string
	// Region is the Secrets Manager region; default "us-east-1".
	Region string
	// ConsistencyDelay bounds how long an access key state change made
	// through the API (CreateAccessKey, UpdateAccessKey to Active or
	// Inactive, DeleteAccessKey) takes to reach authentication: each change
	// takes effect after its own delay, drawn from [ConsistencyDelay/2,
	// ConsistencyDelay]. Until then a new key is refused and a deactivated
	// or deleted key still works, as on AWS. Zero means
	// DefaultConsistencyDelay; Immediate turns the delay off.
	ConsistencyDelay time.Duration
	// UsageDelay bounds how late GetAccessKeyLastUsed shows a use: each use
	// becomes visible after a delay drawn from [UsageDelay/2, UsageDelay].
	// Zero means DefaultUsageDelay; Immediate turns the delay off.
	UsageDelay time.Duration
	// Seed seeds the random spread of the delays. Zero takes
	// $REKEY_AWSEMU_SEED, or else a random seed; Server.Seed reports it.
	Seed uint64
	// Now is the emulator's clock; default time.Now.
	Now func() time.Time
}

// Call is one entry of the ledger: one HTTP request and its outcome.
type Call struct {
	Time        time.Time
	Action      string // e.g. "CreateAccessKey"; "" when the request named none
	AccessKeyID string // from the request's SigV4 credential, "" when unsigned
	User        string // owner of AccessKeyID, "" when the key was never issued
	Code        string // error code, "" on success
}

// AccessKey describes one current access key of a user. Its last use is
// recorded by every request whose signature it verified, as on AWS.
type AccessKey struct {
	ID              string
	User            string
	Status          string // "Active" or "Inactive"
	Created         time.Time
	LastUsed        time.Time // zero when never used
	LastUsedService string    // e.g. "iam", "sts", "secretsmanager"; "" when never used
	LastUsedRegion  string    // "" when never used
}

// Server is a running emulator listening on 127.0.0.1 (random port).
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	seed uint64

	mu       sync.Mutex
	rng      *mrand.Rand
	users    map[string]*user
	keys     map[string]*accessKey // every key ever issued, deleted ones too (for the ledger)
	secrets  map[string]*secret    // by name
	ledger   []Call
	throttle []fault
	fail     []fault
	admin    *accessKey
}

type user struct {
	name, id, arn string
	created       time.Time
	keys          []*accessKey // current keys, oldest first
}

type accessKey struct {
	AccessKey
	secret   string
	deleted  bool         // for the API; authentication follows changes
	changes  []authChange // state changes as authentication sees them, in order
	pending  []use        // uses not yet shown by GetAccessKeyLastUsed
	reported use          // the latest use shown so far
}

type fault struct {
	action string
	n      int
}

// apiError is an AWS error response; Error makes it usable as a Go error.
type apiError struct {
	status    int
	code, msg string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// call is the state of one request while it is served.
type call struct {
	json    bool   // AWS JSON 1.1 (Secrets Manager) rather than the Query protocol
	service string // "iam", "sts" or "secretsmanager"
	action  string
	form    url.Values // Query protocol parameters
	body    []byte
	reqID   string
	now     time.Time
	keyID   string
	user    *user  // owner of the authenticated key
	region  string // the credential scope's region
}

// Start starts an emulator on a random port of 127.0.0.1.
func Start(opts Options) (*Server, error) {
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConsistencyDelay == 0 {
		opts.ConsistencyDelay = DefaultConsistencyDelay
	}
	if opts.UsageDelay == 0 {
		opts.UsageDelay = DefaultUsageDelay
	}
	sd := seed(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		seed:    sd,
		rng:     mrand.New(mrand.NewPCG(sd, sd^0x9e3779b97f4a7c15)),
		ln:      ln,
		done:    make(chan struct{}),
		users:   map[string]*user{},
		keys:    map[string]*accessKey{},
		secrets: map[string]*secret{},
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Seed returns the seed of the delays' random spread; set Options.Seed or
// $REKEY_AWSEMU_SEED to it to repeat a run.
func (s *Server) Seed() uint64 { return s.seed }

// Options returns the options in effect, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// SettledAt returns the time by which every access key state change and
// every use made so far has taken effect (authentication and
// GetAccessKeyLastUsed), on the emulator's clock.
func (s *Server) SettledAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, k := range s.keys {
		if n := len(k.changes); n > 0 && k.changes[n-1].at.After(t) {
			t = k.changes[n-1].at
		}
		for _, u := range k.pending {
			if u.visibleAt.After(t) {
				t = u.visibleAt
			}
		}
	}
	return t
}

// URL returns the endpoint serving IAM, STS and Secrets Manager, like
// "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server, closes its connections and waits for it to stop.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// CreateUser creates an IAM user (if missing) and returns its ARN.
func (s *Server) CreateUser(name string) (arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createUser(name, s.opts.Now()).arn
}

func (s *Server) createUser(name string, now time.Time) *user {
	if u := s.users[name]; u != nil {
		return u
	}
	// IAM API Reference, data type User: UserId is a unique ID, "AIDA..." for users.
	u := &user{name: name, id: "AIDA" + randString(upperBase32, 17), created: now, arn: s.userARN(name)}
	s.users[name] = u
	return u
}

// AdminKey creates the user "admin" (if missing) and returns an access key of
// it that authenticates at once. admin may call every API on every user.
// Repeated calls return the same key while it exists and is active; the key
// does not count against admin's limit of two keys when it is created.
func (s *Server) AdminKey() (accessKeyID, secretAccessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if k := s.admin; k != nil && !k.deleted && k.Status == statusActive && k.authAt(now) == authActive {
		return k.ID, k.secret
	}
	s.admin = s.newKey(s.createUser(adminUser, now), now, false)
	return s.admin.ID, s.admin.secret
}

// CreateAccessKeyFor creates an access key for an existing user, for test
// setup. It authenticates at once (no consistency delay: it stands for a key
// made long before the test) but obeys the limit of two keys per user.
func (s *Server) CreateAccessKeyFor(userName string) (id, secret string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userName]
	if u == nil {
		return "", "", errNoSuchUser(userName)
	}
	if err := checkKeyQuota(u); err != nil {
		return "", "", err
	}
	now := s.opts.Now()
	k := s.newKey(u, now, false)
	return k.ID, k.secret, nil
}

// Throttle makes the next n authenticated requests for action ("" = any
// action) fail with the service's throttling error: HTTP 400 Throttling for
// IAM and STS, HTTP 400 ThrottlingException for Secrets Manager. The SDKs
// retry these.
func (s *Server) Throttle(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = append(s.throttle, fault{action, n})
}

// Fail makes the next n authenticated requests for action ("" = any action)
// fail with HTTP 500 InternalFailure. The SDKs retry these.
func (s *Server) Fail(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, fault{action, n})
}

// Ledger returns every request served so far, oldest first.
func (s *Server) Ledger() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ledger)
}

// Keys returns the current (not deleted) access keys of a user, oldest first.
func (s *Server) Keys(userName string) []AccessKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userName]
	if u == nil {
		return nil
	}
	out := make([]AccessKey, 0, len(u.keys))
	for _, k := range u.keys {
		out = append(out, k.AccessKey)
	}
	return out
}

// newKey issues a key; delayed applies the consistency delay.
func (s *Server) newKey(u *user, now time.Time, delayed bool) *accessKey {
	// IAM API Reference, data type AccessKey: AccessKeyId has 16-128 word
	// characters (AWS issues "AKIA" + 16 upper-case base32 characters) and
	// the SecretAccessKey is 40 characters.
	k := &accessKey{
		AccessKey: AccessKey{ID: "AKIA" + randString(upperBase32, 16), User: u.name,
			Status: statusActive, Created: now},
		secret: randString(base64Chars, 40),
	}
	s.change(k, now, authActive, delayed)
	u.keys = append(u.keys, k)
	s.keys[k.ID] = k
	return k
}

// takeFault consumes one pending fault matching action, if any.
func takeFault(faults []fault, action string) bool {
	for i := range faults {
		if faults[i].n > 0 && (faults[i].action == "" || faults[i].action == action) {
			faults[i].n--
			return true
		}
	}
	return false
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	c := &call{body: body, reqID: newUUID()}

	s.mu.Lock()
	c.now = s.opts.Now()
	result, aerr := s.serve(c, r, readErr) // results hold no references to the state

	entry := Call{Time: c.now, Action: c.action, AccessKeyID: c.keyID}
	if k := s.keys[c.keyID]; k != nil {
		entry.User = k.User
	}
	if aerr != nil {
		entry.Code = aerr.code
	}
	s.ledger = append(s.ledger, entry)
	s.mu.Unlock()

	h := w.Header()
	// Every AWS response carries its request id and the server's Date, from
	// which the SDKs correct clock skew.
	h.Set("x-amzn-RequestId", c.reqID)
	h.Set("Date", c.now.UTC().Format(http.TimeFormat))
	if c.json {
		writeJSON(w, c, result, aerr)
	} else {
		writeQuery(w, c, result, aerr)
	}
}

func (s *Server) serve(c *call, r *http.Request, readErr error) (any, *apiError) {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		// Secrets Manager API Reference, Making requests (AWS JSON 1.1):
		// the operation is named by X-Amz-Target "secretsmanager.Action".
		c.json, c.service = true, "secretsmanager"
		prefix, action, _ := strings.Cut(target, ".")
		c.action = action
		if prefix != "secretsmanager" {
			return nil, errorf(400, "UnknownOperationException", "Unknown operation %s", target)
		}
	} else {
		// IAM/STS API Reference, Making Query Requests: parameters come in the
		// URL or in the form-encoded POST body; Action names the operation.
		form, err := url.ParseQuery(r.URL.RawQuery + "&" + string(c.body))
		c.form, c.action, c.service = form, form.Get("Action"), "iam"
		if c.action == "GetCallerIdentity" {
			c.service = "sts" // until the credential scope says otherwise
		}
		if err != nil {
			// Common Errors: MalformedQueryString, HTTP 404.
			return nil, errorf(404, "MalformedQueryString", "%v", err)
		}
	}
	if readErr != nil {
		return nil, errorf(400, "ValidationError", "cannot read request body: %v", readErr)
	}
	if aerr := s.authenticate(c, r); aerr != nil {
		return nil, aerr
	}
	// Common Errors: Throttling / ThrottlingException, HTTP 400 ("Rate exceeded").
	if takeFault(s.throttle, c.action) {
		if c.json {
			return nil, errorf(400, "ThrottlingException", "Rate exceeded")
		}
		return nil, errorf(400, "Throttling", "Rate exceeded")
	}
	// Common Errors: InternalFailure, HTTP 500.
	if takeFault(s.fail, c.action) {
		return nil, errorf(500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.")
	}
	if c.json {
		h := smActions[c.action]
		if h == nil {
			// AWS JSON 1.1: an unknown X-Amz-Target is UnknownOperationException.
			return nil, errorf(400, "UnknownOperationException", "Unknown operation %s", c.action)
		}
		var req smRequest
		if err := json.Unmarshal(c.body, &req); err != nil {
			// AWS JSON 1.1: a body that does not parse is SerializationException.
			return nil, errorf(400, "SerializationException", "%v", err)
		}
		return h(s, c, &req)
	}
	version := map[string]string{"iam": iamVersion, "sts": stsVersion}[c.service]
	h := queryActions[c.service][c.action]
	if h == nil || c.form.Get("Version") != version {
		// Common Errors: InvalidAction, HTTP 400, for an unknown Action or Version.
		v := c.form.Get("Version")
		if v == "" {
			v = "NO_VERSION_SPECIFIED"
		}
		return nil, errorf(400, "InvalidAction", "Could not find operation %s for version %s", c.action, v)
	}
	return h(s, c)
}

const (
	adminUser      = "admin"
	statusActive   = "Active"
	statusInactive = "Inactive"
	upperBase32    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Chars    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	alnum          = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randString returns n characters of alphabet drawn with crypto/rand.
func randString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// newUUID returns a random (version 4) UUID, the form of AWS request ids and
// of the SDKs' ClientRequestToken.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
