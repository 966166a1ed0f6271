// Package kubesecret implements the kubernetes_secret sink: it writes a
// policy's key into the data of a Kubernetes Secret, with check-and-set on
// metadata.resourceVersion, and reads it back.
//
// Rollback needs the previous value, and rekey never writes secret values
// to its own files. Before promoting, the sink copies the Secret's data into
// a companion Secret (by default NAME-rekey-previous) in the same namespace,
// so that the previous value has exactly the protection of the Secret
// itself, and survives a crash of rekey. The companion is emptied when the
// rotation is committed or rolled back. The rotation id is written in an
// annotation of both, so that a rotation resumed after a crash recognises
// its own writes.
package kubesecret

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/internal/duration"
	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Kind is the sink's block label.
const Kind = "kubernetes_secret"

func init() { sinks.Register(Kind, New) }

// Annotations rekey writes; the prefix rekey.dev/ is reserved.
const (
	AnnPolicy     = "rekey.dev/policy"
	AnnRotationID = "rekey.dev/rotation-id"
	AnnGeneration = "rekey.dev/generation"
	AnnRotatedAt  = "rekey.dev/rotated-at"
	// AnnSourceVersion, on the companion, is the resourceVersion of the
	// Secret whose data it holds.
	AnnSourceVersion = "rekey.dev/source-resource-version"
	// AnnSourceAnnotations, on the companion, holds the rekey annotations
	// the Secret had, as JSON, to restore them with the data.
	AnnSourceAnnotations = "rekey.dev/source-annotations"
	// LabelManagedBy marks the companion.
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// DefaultRequestTimeout limits one API request.
const DefaultRequestTimeout = 15 * time.Second

type config struct {
	Namespace       string            `hcl:"namespace"`
	Name            string            `hcl:"name"`
	Data            map[string]string `hcl:"data,optional"`
	Type            *string           `hcl:"type,optional"`
	Labels          map[string]string `hcl:"labels,optional"`
	Annotations     map[string]string `hcl:"annotations,optional"`
	Kubeconfig      *string           `hcl:"kubeconfig,optional"`
	Context         *string           `hcl:"context,optional"`
	Server          *string           `hcl:"server,optional"`
	TokenFile       *string           `hcl:"token_file,optional"`
	CAFile          *string           `hcl:"ca_file,optional"`
	InCluster       bool              `hcl:"in_cluster,optional"`
	CreateIfMissing bool              `hcl:"create_if_missing,optional"`
	PreviousName    *string           `hcl:"previous_name,optional"`
	RequestTimeout  *string           `hcl:"request_timeout,optional"`

	NamespaceRange      hcl.Range `hcl:"namespace,attr_range"`
	NameRange           hcl.Range `hcl:"name,attr_range"`
	DataRange           hcl.Range `hcl:"data,attr_range"`
	TypeRange           hcl.Range `hcl:"type,attr_range"`
	LabelsRange         hcl.Range `hcl:"labels,attr_range"`
	AnnotationsRange    hcl.Range `hcl:"annotations,attr_range"`
	KubeconfigRange     hcl.Range `hcl:"kubeconfig,attr_range"`
	ServerRange         hcl.Range `hcl:"server,attr_range"`
	PreviousNameRange   hcl.Range `hcl:"previous_name,attr_range"`
	RequestTimeoutRange hcl.Range `hcl:"request_timeout,attr_range"`
}

// Sink writes keys into one Secret.
type Sink struct {
	c           *client
	ns, name    string
	prevName    string
	fields      map[string]string // data key -> value field; nil: every field under its own name
	typ         string
	labels      map[string]string
	annotations map[string]string
	create      bool

	kubeconfig  string // resolved at first use when it did not exist at load
	kubeContext string
	inCluster   bool
}

var (
	_                 sinks.Sink     = (*Sink)(nil)
	_                 sinks.Finisher = (*Sink)(nil)
	dnsLabel                         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain                     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dataKeyRE                        = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	errPreviousAbsent                = errors.New("the previous value is not in the companion Secret")
)

// New is the factory registered for sink "kubernetes_secret".
func New(env *plugin.Env, body hcl.Body) (sinks.Sink, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	errAt := func(r *hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r})
	}
	s := &Sink{ns: cfg.Namespace, name: cfg.Name, fields: cfg.Data, typ: "Opaque", labels: cfg.Labels, annotations: cfg.Annotations, create: cfg.CreateIfMissing}
	if !dnsLabel.MatchString(s.ns) || len(s.ns) > 63 {
		errAt(at(cfg.NamespaceRange), "Invalid namespace", "A namespace is a DNS label: lower-case letters, digits and '-', at most 63 characters.")
	}
	if !dnsSubdomain.MatchString(s.name) || len(s.name) > 253 {
		errAt(at(cfg.NameRange), "Invalid name", "A Secret name is a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253 characters.")
	}
	s.prevName = s.name + "-rekey-previous"
	if cfg.PreviousName != nil {
		s.prevName = *cfg.PreviousName
	}
	if !dnsSubdomain.MatchString(s.prevName) || len(s.prevName) > 253 || s.prevName == s.name {
		errAt(at(cfg.PreviousNameRange), "Invalid previous_name", "previous_name is the companion Secret that holds the previous value during a rotation: a DNS subdomain other than name.")
	}
	for k := range cfg.Data {
		if !dataKeyRE.MatchString(k) || len(k) > 253 {
			errAt(at(cfg.DataRange), "Invalid data key", fmt.Sprintf("%q is not a valid Secret data key: letters, digits, '-', '_' and '.'.", k))
		}
	}
	if cfg.Type != nil {
		s.typ = *cfg.Type
		if s.typ == "" {
			errAt(at(cfg.TypeRange), "Invalid type", "type is the Secret's type, such as \"Opaque\" or \"kubernetes.io/basic-auth\".")
		}
	}
	for k := range cfg.Annotations {
		if strings.HasPrefix(k, "rekey.dev/") {
			errAt(at(cfg.AnnotationsRange), "Reserved annotation", fmt.Sprintf("%q uses the prefix rekey.dev/, which rekey reserves for its bookkeeping.", k))
		}
	}
	s.c = &client{timeout: DefaultRequestTimeout}
	if cfg.RequestTimeout != nil {
		d, err := duration.Parse(*cfg.RequestTimeout)
		if err != nil || d <= 0 {
			errAt(at(cfg.RequestTimeoutRange), "Invalid request_timeout", "Write a positive duration such as \"15s\".")
		}
		s.c.timeout = d
	}
	n := 0
	for _, set := range []bool{cfg.Kubeconfig != nil, cfg.Server != nil, cfg.InCluster} {
		if set {
			n++
		}
	}
	if n != 1 {
		errAt(env.DefRange.Ptr(), "One way to reach the cluster", "Set exactly one of kubeconfig (a file), server with token_file (and ca_file), or in_cluster = true (the pod's service account).")
	}
	if cfg.Context != nil && cfg.Kubeconfig == nil {
		errAt(env.DefRange.Ptr(), "context without kubeconfig", "context selects a context of the kubeconfig file; set kubeconfig too.")
	}
	switch {
	case cfg.Kubeconfig != nil:
		ctxName := ""
		if cfg.Context != nil {
			ctxName = *cfg.Context
		}
		path := env.Path(*cfg.Kubeconfig)
		if a, _, err := loadKubeconfig(path, ctxName); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errAt(at(cfg.KubeconfigRange), "Invalid kubeconfig", fmt.Sprintf("%s: %s.", path, err))
			}
			s.c.auth = auth{}
			s.kubeconfig = path
			s.kubeContext = ctxName
		} else {
			s.c.auth = a
		}
	case cfg.Server != nil:
		if !strings.HasPrefix(*cfg.Server, "https://") {
			errAt(at(cfg.ServerRange), "Invalid server", "server is the API server's https:// URL; rekey never talks to it in clear text.")
		}
		if cfg.TokenFile == nil {
			errAt(at(cfg.ServerRange), "token_file required", "With server, give the bearer token of rekey's service account in token_file.")
		}
		s.c.auth = auth{server: strings.TrimSuffix(*cfg.Server, "/")}
		if cfg.TokenFile != nil {
			s.c.auth.tokenFile = env.Path(*cfg.TokenFile)
		}
		if cfg.CAFile != nil {
			s.c.auth.caFile = env.Path(*cfg.CAFile)
		}
	case cfg.InCluster:
		s.inCluster = true
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

// Location names the Secret: kubernetes_secret:NAMESPACE/NAME.
func (s *Sink) Location() string { return Kind + ":" + s.ns + "/" + s.name }

// ready resolves how to reach the cluster, for a kubeconfig that did not
// exist at load time and for in_cluster.
func (s *Sink) ready() error {
	if s.c.auth.server != "" {
		return nil
	}
	switch {
	case s.inCluster:
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return plugin.Permanent(errors.New("in_cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: rekey is not running in a pod"))
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		s.c.auth = auth{server: "https://" + host + ":" + port, tokenFile: inClusterDir + "/token", caFile: inClusterDir + "/ca.crt"}
	case s.kubeconfig != "":
		a, _, err := loadKubeconfig(s.kubeconfig, s.kubeContext)
		if err != nil {
			return plugin.Permanent(fmt.Errorf("kubeconfig %s: %w", s.kubeconfig, err))
		}
		s.c.auth = a
	}
	return nil
}

// explain turns an API error into one an operator can act on. It names the
// verb and the Secret, never data.
func (s *Sink) explain(verb, name string, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %s secret %s/%s: %w", s.Location(), verb, s.ns, name, err)
	}
	where := fmt.Sprintf("%s: %s secret %s/%s", s.Location(), verb, s.ns, name)
	switch ae.code {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", where, plugin.ErrNotFound)
	case http.StatusConflict:
		return fmt.Errorf("%s: %w (%s)", where, plugin.ErrConflict, ae.reason)
	case http.StatusUnauthorized:
		return plugin.Permanent(fmt.Errorf("%s: the API server refused rekey's credential (401): check the token or certificate", where))
	case http.StatusForbidden:
		return plugin.Permanent(fmt.Errorf("%s: forbidden (403): rekey's Role must allow %q on secrets/%s in namespace %s (see the README's RBAC Role): %s", where, verb, name, s.ns, ae.msg))
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		return plugin.Permanent(fmt.Errorf("%s: refused as invalid: %s", where, ae.msg))
	}
	return fmt.Errorf("%s: %w", where, ae)
}

func (s *Sink) get(ctx context.Context, name string) (*object, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	var o object
	if err := s.c.do(ctx, http.MethodGet, s.c.secretURL(s.ns, name), nil, &o); err != nil {
		return nil, s.explain("get", name, err)
	}
	return &o, nil
}

func (s *Sink) put(ctx context.Context, o *object) (*object, error) {
	var out object
	if err := s.c.do(ctx, http.MethodPut, s.c.secretURL(s.ns, o.Metadata.Name), o, &out); err != nil {
		return nil, s.explain("update", o.Metadata.Name, err)
	}
	return &out, nil
}

func (s *Sink) post(ctx context.Context, o *object) (*object, error) {
	var out object
	if err := s.c.do(ctx, http.MethodPost, s.c.secretURL(s.ns, ""), o, &out); err != nil {
		return nil, s.explain("create", o.Metadata.Name, err)
	}
	return &out, nil
}

// Current returns the Secret's resourceVersion, or "" when it does not
// exist.
func (s *Sink) Current(ctx context.Context) (sinks.Version, error) {
	o, err := s.get(ctx, s.name)
	if errors.Is(err, plugin.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return sinks.Version(o.Metadata.ResourceVersion), nil
}

// Stage copies the Secret's current data into the companion Secret, so that
// a rollback, even after a crash, can restore it. It returns "": dependents
// are served nothing new.
func (s *Sink) Stage(ctx context.Context, rot plugin.Rotation, _ plugin.Key, st sinks.State) (sinks.Version, error) {
	cur, err := s.get(ctx, s.name)
	if errors.Is(err, plugin.ErrNotFound) {
		if st.Prev != "" {
			return "", fmt.Errorf("%s: the Secret was deleted since version %s: %w", s.Location(), st.Prev, plugin.ErrConflict)
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if sinks.Version(cur.Metadata.ResourceVersion) != st.Prev {
		return "", fmt.Errorf("%s: the Secret changed since version %s: %w", s.Location(), st.Prev, plugin.ErrConflict)
	}
	comp, err := s.get(ctx, s.prevName)
	if err != nil && !errors.Is(err, plugin.ErrNotFound) {
		return "", err
	}
	if comp != nil && comp.Metadata.Annotations[AnnRotationID] == rot.ID && comp.Metadata.Annotations[AnnSourceVersion] == string(st.Prev) {
		return "", nil
	}
	own := map[string]string{}
	for k, v := range cur.Metadata.Annotations {
		if strings.HasPrefix(k, "rekey.dev/") {
			own[k] = v
		}
	}
	ownJSON, _ := json.Marshal(own)
	next := &object{APIVersion: "v1", Kind: "Secret", Type: "Opaque", Data: cur.Data,
		Metadata: objectMeta{Name: s.prevName, Namespace: s.ns,
			Labels: map[string]string{LabelManagedBy: "rekey"},
			Annotations: map[string]string{
				AnnPolicy: rot.Policy, AnnRotationID: rot.ID, AnnSourceVersion: string(st.Prev),
				AnnSourceAnnotations: string(ownJSON),
			}}}
	if comp == nil {
		_, err = s.post(ctx, next)
	} else {
		next.Metadata.ResourceVersion = comp.Metadata.ResourceVersion
		_, err = s.put(ctx, next)
	}
	if err != nil {
		return "", fmt.Errorf("keeping the previous value in the companion Secret: %w", err)
	}
	return "", nil
}

// wanted returns the data keys and values the key maps to.
func (s *Sink) wanted(key plugin.Key) (map[string][]byte, error) {
	out := map[string][]byte{}
	if s.fields == nil {
		for name, v := range key.Value {
			if !dataKeyRE.MatchString(name) {
				return nil, plugin.Permanent(fmt.Errorf("%s: the key field %q is not a valid Secret data key; map it with data = { ... }", s.Location(), name))
			}
			out[name] = []byte(v.Reveal())
		}
		return out, nil
	}
	for dk, field := range s.fields {
		v, ok := key.Value[field]
		if !ok {
			return nil, plugin.Permanent(fmt.Errorf("%s: the key has no field %q (data key %s); fields: %s", s.Location(), field, dk, strings.Join(fieldNames(key.Value), ", ")))
		}
		out[dk] = []byte(v.Reveal())
	}
	return out, nil
}

func fieldNames(f secret.Fields) []string {
	names := make([]string, 0, len(f))
	for k := range f {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func holds(data, want map[string][]byte) bool {
	for k, v := range want {
		if subtle.ConstantTimeCompare(data[k], v) != 1 {
			return false
		}
	}
	return true
}

// Promote writes the new value into the Secret with check-and-set against
// st.Prev (a writer outside rekey yields plugin.ErrConflict), then reads it
// back.
func (s *Sink) Promote(ctx context.Context, rot plugin.Rotation, key plugin.Key, st sinks.State) (sinks.Version, error) {
	want, err := s.wanted(key)
	if err != nil {
		return "", err
	}
	cur, err := s.get(ctx, s.name)
	switch {
	case errors.Is(err, plugin.ErrNotFound) && st.Prev != "":
		return "", fmt.Errorf("%s: the Secret was deleted since version %s: %w", s.Location(), st.Prev, plugin.ErrConflict)
	case errors.Is(err, plugin.ErrNotFound) && !s.create:
		return "", plugin.Permanent(fmt.Errorf("%s: the Secret does not exist: create it, or set create_if_missing = true (rekey's Role then needs create on secrets)", s.Location()))
	case errors.Is(err, plugin.ErrNotFound):
		o := &object{APIVersion: "v1", Kind: "Secret", Type: s.typ, Data: want,
			Metadata: objectMeta{Name: s.name, Namespace: s.ns, Labels: s.labels, Annotations: s.annotate(nil, rot)}}
		if _, err := s.post(ctx, o); err != nil {
			if errors.Is(err, plugin.ErrConflict) {
				return s.readBack(ctx, rot, want)
			}
			return "", err
		}
		return s.readBack(ctx, rot, want)
	case err != nil:
		return "", err
	}
	if cur.Metadata.Annotations[AnnRotationID] == rot.ID && holds(cur.Data, want) {
		return sinks.Version(cur.Metadata.ResourceVersion), nil
	}
	if sinks.Version(cur.Metadata.ResourceVersion) != st.Prev {
		return "", fmt.Errorf("%s: the Secret changed since version %s: %w", s.Location(), st.Prev, plugin.ErrConflict)
	}
	if cur.Type != "" && cur.Type != s.typ {
		return "", plugin.Permanent(fmt.Errorf("%s: the Secret's type is %s, not %s: set type = %q", s.Location(), cur.Type, s.typ, cur.Type))
	}
	next := *cur
	next.Data = map[string][]byte{}
	for k, v := range cur.Data {
		next.Data[k] = v
	}
	for k, v := range want {
		next.Data[k] = v
	}
	next.Metadata.Annotations = s.annotate(cur.Metadata.Annotations, rot)
	next.Metadata.Labels = merge(cur.Metadata.Labels, s.labels)
	if _, err := s.put(ctx, &next); err != nil {
		return "", err
	}
	return s.readBack(ctx, rot, want)
}

func (s *Sink) readBack(ctx context.Context, rot plugin.Rotation, want map[string][]byte) (sinks.Version, error) {
	got, err := s.get(ctx, s.name)
	if err != nil {
		return "", fmt.Errorf("reading back: %w", err)
	}
	if got.Metadata.Annotations[AnnRotationID] != rot.ID || !holds(got.Data, want) {
		return "", fmt.Errorf("%s: read back after writing, the Secret does not hold the new value: %w", s.Location(), plugin.ErrConflict)
	}
	return sinks.Version(got.Metadata.ResourceVersion), nil
}

func (s *Sink) annotate(cur map[string]string, rot plugin.Rotation) map[string]string {
	out := merge(cur, s.annotations)
	out[AnnPolicy] = rot.Policy
	out[AnnRotationID] = rot.ID
	out[AnnGeneration] = strconv.FormatInt(rot.Generation, 10)
	out[AnnRotatedAt] = time.Now().UTC().Format(time.RFC3339)
	return out
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Rollback restores the data the companion Secret holds, when the Secret
// holds this rotation's write; when it was never promoted there is nothing
// to do; when another writer changed it since, it returns
// plugin.ErrConflict and changes nothing.
func (s *Sink) Rollback(ctx context.Context, rot plugin.Rotation, st sinks.State) error {
	cur, err := s.get(ctx, s.name)
	if errors.Is(err, plugin.ErrNotFound) {
		if st.Prev == "" {
			return s.clearCompanion(ctx, rot)
		}
		return fmt.Errorf("%s: the Secret was deleted by another writer: %w", s.Location(), plugin.ErrConflict)
	}
	if err != nil {
		return err
	}
	if sinks.Version(cur.Metadata.ResourceVersion) == st.Prev || cur.Metadata.Annotations[AnnRotationID] != rot.ID {
		if sinks.Version(cur.Metadata.ResourceVersion) == st.Prev {
			return s.clearCompanion(ctx, rot)
		}
		return fmt.Errorf("%s: the Secret was changed by another writer since this rotation: %w", s.Location(), plugin.ErrConflict)
	}
	if st.Prev == "" {
		if err := s.c.do(ctx, http.MethodDelete, s.c.secretURL(s.ns, s.name), map[string]any{
			"apiVersion": "v1", "kind": "DeleteOptions",
			"preconditions": map[string]string{"resourceVersion": cur.Metadata.ResourceVersion},
		}, nil); err != nil {
			return s.explain("delete", s.name, err)
		}
		return nil
	}
	comp, err := s.get(ctx, s.prevName)
	if err != nil && !errors.Is(err, plugin.ErrNotFound) {
		return err
	}
	if comp == nil || comp.Metadata.Annotations[AnnRotationID] != rot.ID || comp.Metadata.Annotations[AnnSourceVersion] != string(st.Prev) {
		return plugin.Permanent(fmt.Errorf("%s: cannot restore version %s: %w (companion %s/%s); the new key is kept", s.Location(), st.Prev, errPreviousAbsent, s.ns, s.prevName))
	}
	next := *cur
	next.Data = comp.Data
	ann := map[string]string{}
	for k, v := range cur.Metadata.Annotations {
		if !strings.HasPrefix(k, "rekey.dev/") {
			ann[k] = v
		}
	}
	var own map[string]string
	_ = json.Unmarshal([]byte(comp.Metadata.Annotations[AnnSourceAnnotations]), &own)
	for k, v := range own {
		ann[k] = v
	}
	next.Metadata.Annotations = ann
	if _, err := s.put(ctx, &next); err != nil {
		return err
	}
	return s.clearCompanion(ctx, rot)
}

// Finish empties the companion Secret once the rotation no longer needs the
// previous value (committed or rolled back).
func (s *Sink) Finish(ctx context.Context, rot plugin.Rotation) error {
	return s.clearCompanion(ctx, rot)
}

func (s *Sink) clearCompanion(ctx context.Context, rot plugin.Rotation) error {
	comp, err := s.get(ctx, s.prevName)
	if errors.Is(err, plugin.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if comp.Metadata.Annotations[AnnRotationID] != rot.ID || len(comp.Data) == 0 {
		return nil
	}
	comp.Data = nil
	delete(comp.Metadata.Annotations, AnnSourceAnnotations)
	if _, err := s.put(ctx, comp); err != nil {
		return fmt.Errorf("emptying the companion Secret: %w", err)
	}
	return nil
}
