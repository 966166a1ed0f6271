package dbtest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from 127.0.0.1 to a server and can cut
// them: CutAfter arms it to close a connection right after forwarding a
// client write that contains a pattern (say, a COMMIT), so that the
// server may apply the statement but its answer is lost.
type Proxy struct {
	// Host and Port are where clients connect.
	Host string
	Port int

	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	pattern []byte
	conns   map[net.Conn]bool
	cuts    atomic.Int64
}

// StartProxy forwards to target ("host:port") until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// CutAfter arms the proxy: the next client write containing pattern is
// forwarded, then that connection is closed at both ends.
func (p *Proxy) CutAfter(pattern string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pattern = []byte(pattern)
}

// Cuts is how many connections the proxy has cut.
func (p *Proxy) Cuts() int { return int(p.cuts.Load()) }

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client, server)
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer p.untrack(client, server)
			p.forward(server, client)
		}()
		go func() {
			defer p.wg.Done()
			defer p.untrack(client, server)
			_, _ = io.Copy(client, server)
		}()
	}
}

// forward copies client writes to the server, cutting when armed.
func (p *Proxy) forward(server, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
			p.mu.Lock()
			hit := p.pattern != nil && bytes.Contains(buf[:n], p.pattern)
			if hit {
				p.pattern = nil
			}
			p.mu.Unlock()
			if hit {
				p.cuts.Add(1)
				return
			}
		}
		if err != nil {
			return
		}
	}
}
