package plugin

import (
	"context"
	"io"
	"sync"

	"github.com/hashicorp/hcl/v2"
)

// ConnectionFactory decodes a top-level connection block such as
// `vault "main" { ... }` into a connection value that plugins of the same
// kind type-assert. It must not contact the outside service; a connection
// that needs to log in does so lazily on first use.
type ConnectionFactory func(env *Env, name string, body hcl.Body) (any, hcl.Diagnostics)

// ConnectionKinds is the registry of connection block types ("vault",
// "aws"), filled by the packages that implement them.
var ConnectionKinds = NewRegistry[ConnectionFactory]("connection")

// Connections holds the decoded connection instances of one configuration.
type Connections struct {
	mu sync.Mutex
	m  map[string]any
}

// NewConnections returns an empty set.
func NewConnections() *Connections { return &Connections{m: map[string]any{}} }

// Add stores a connection under kind and name.
func (c *Connections) Add(kind, name string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[kind+"."+name] = v
}

// Get returns the connection declared as `kind "name"`.
func (c *Connections) Get(kind, name string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[kind+"."+name]
	return v, ok
}

// Close closes every connection that implements io.Closer.
func (c *Connections) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for _, v := range c.m {
		if cl, ok := v.(io.Closer); ok {
			if err := cl.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Starter is implemented by connections that run background work (token
// renewal); the daemon starts them with a context it cancels on shutdown.
type Starter interface {
	Start(ctx context.Context) error
}

// All returns every connection, in no particular order.
func (c *Connections) All() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]any, 0, len(c.m))
	for _, v := range c.m {
		out = append(out, v)
	}
	return out
}
