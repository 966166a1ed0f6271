package kubesecret

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rekeyhq/rekey/plugin"
)

// The service account files of a pod, for in_cluster.
const (
	inClusterDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// auth says how to reach and authenticate to the API server. Files are read
// at every request, so a renewed token or certificate is picked up.
type auth struct {
	server    string
	caFile    string
	caData    []byte
	tokenFile string
	token     string // from a kubeconfig; never logged
	certFile  string
	keyFile   string
	certData  []byte
	keyData   []byte
}

// client is the small REST client of the Secrets API the sink needs: get,
// create, update (with resourceVersion preconditions) and delete of one
// Secret. client-go would add tens of megabytes and start-up work for four
// calls on one resource; see the README.
type client struct {
	auth    auth
	timeout time.Duration
}

// object is the part of a Secret the sink reads and writes.
type object struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data,omitempty"`
}

type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

// status is a Kubernetes Status object returned with errors. Its message
// names objects and fields, never Secret data.
type status struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// apiError is an error answer of the API server.
type apiError struct {
	code   int
	reason string
	msg    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, e.reason, e.msg)
}

func (c *client) secretURL(ns, name string) string {
	u := c.auth.server + "/api/v1/namespaces/" + url.PathEscape(ns) + "/secrets"
	if name != "" {
		u += "/" + url.PathEscape(name)
	}
	return u
}

func (c *client) httpClient() (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := c.auth.caData
	if c.auth.caFile != "" {
		b, err := os.ReadFile(c.auth.caFile)
		if err != nil {
			return nil, plugin.Permanent(fmt.Errorf("reading the API server's CA: %w", err))
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, plugin.Permanent(errors.New("the API server's CA holds no PEM certificate"))
		}
		tlsCfg.RootCAs = pool
	}
	switch {
	case c.auth.certFile != "":
		cert, err := tls.LoadX509KeyPair(c.auth.certFile, c.auth.keyFile)
		if err != nil {
			return nil, plugin.Permanent(fmt.Errorf("loading the client certificate: %w", err))
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	case len(c.auth.certData) > 0:
		cert, err := tls.X509KeyPair(c.auth.certData, c.auth.keyData)
		if err != nil {
			return nil, plugin.Permanent(fmt.Errorf("loading the client certificate: %w", err))
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment},
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

func (c *client) bearer() (string, error) {
	if c.auth.tokenFile != "" {
		b, err := os.ReadFile(c.auth.tokenFile)
		if err != nil {
			return "", plugin.Permanent(fmt.Errorf("reading the token file: %w", err))
		}
		return strings.TrimSpace(string(b)), nil
	}
	return c.auth.token, nil
}

// do sends one request. in, when not nil, is sent as JSON; out, when not
// nil, receives the decoded answer.
func (c *client) do(ctx context.Context, method, u string, in, out any) error {
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return plugin.Permanent(err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tok, err := c.bearer()
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var st status
		_ = json.Unmarshal(raw, &st)
		return &apiError{code: resp.StatusCode, reason: st.Reason, msg: st.Message}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decoding the API server's answer: %w", err)
		}
	}
	return nil
}

// loadKubeconfig reads the cluster, user and namespace of a kubeconfig's
// context (the current one when name is empty).
func loadKubeconfig(path, name string) (auth, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return auth{}, "", err
	}
	var kc struct {
		CurrentContext string `yaml:"current-context"`
		Clusters       []struct {
			Name    string `yaml:"name"`
			Cluster struct {
				Server                   string `yaml:"server"`
				CertificateAuthority     string `yaml:"certificate-authority"`
				CertificateAuthorityData string `yaml:"certificate-authority-data"`
				InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			Name string `yaml:"name"`
			User struct {
				Token                 string    `yaml:"token"`
				TokenFile             string    `yaml:"tokenFile"`
				ClientCertificate     string    `yaml:"client-certificate"`
				ClientKey             string    `yaml:"client-key"`
				ClientCertificateData string    `yaml:"client-certificate-data"`
				ClientKeyData         string    `yaml:"client-key-data"`
				Exec                  yaml.Node `yaml:"exec"`
				AuthProvider          yaml.Node `yaml:"auth-provider"`
			} `yaml:"user"`
		} `yaml:"users"`
		Contexts []struct {
			Name    string `yaml:"name"`
			Context struct {
				Cluster   string `yaml:"cluster"`
				User      string `yaml:"user"`
				Namespace string `yaml:"namespace"`
			} `yaml:"context"`
		} `yaml:"contexts"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return auth{}, "", fmt.Errorf("not a kubeconfig: %w", err)
	}
	if name == "" {
		name = kc.CurrentContext
	}
	var a auth
	ns := ""
	found := false
	for _, cx := range kc.Contexts {
		if cx.Name != name {
			continue
		}
		found = true
		ns = cx.Context.Namespace
		for _, cl := range kc.Clusters {
			if cl.Name != cx.Context.Cluster {
				continue
			}
			if cl.Cluster.InsecureSkipTLSVerify {
				return auth{}, "", errors.New("the cluster sets insecure-skip-tls-verify: rekey always verifies TLS; give its CA as certificate-authority")
			}
			a.server = strings.TrimSuffix(cl.Cluster.Server, "/")
			a.caFile = rel(path, cl.Cluster.CertificateAuthority)
			if cl.Cluster.CertificateAuthorityData != "" {
				if a.caData, err = base64.StdEncoding.DecodeString(cl.Cluster.CertificateAuthorityData); err != nil {
					return auth{}, "", errors.New("certificate-authority-data is not base64")
				}
			}
		}
		for _, u := range kc.Users {
			if u.Name != cx.Context.User {
				continue
			}
			if !u.User.Exec.IsZero() || !u.User.AuthProvider.IsZero() {
				return auth{}, "", errors.New("the user authenticates with an exec or auth-provider plugin, which rekey does not run: use a token file, a client certificate, or in_cluster")
			}
			a.token, a.tokenFile = u.User.Token, rel(path, u.User.TokenFile)
			a.certFile, a.keyFile = rel(path, u.User.ClientCertificate), rel(path, u.User.ClientKey)
			if u.User.ClientCertificateData != "" {
				a.certData, _ = base64.StdEncoding.DecodeString(u.User.ClientCertificateData)
				a.keyData, _ = base64.StdEncoding.DecodeString(u.User.ClientKeyData)
			}
		}
	}
	switch {
	case !found:
		return auth{}, "", fmt.Errorf("no context %q", name)
	case a.server == "":
		return auth{}, "", fmt.Errorf("context %q names no cluster with a server", name)
	}
	return a, ns, nil
}

func rel(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(base), p)
}
