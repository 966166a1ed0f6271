//go:build unix

package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAdmin is the ACL user rekey uses in tests: it may manage ACL users
// and write its bookkeeping keys (rekey:*), nothing else.
const RedisAdmin = "rekey_admin"

// RedisAdminRules are the ACL rules of RedisAdmin: the least privilege the
// redis provider needs.
const RedisAdminRules = "+acl|setuser +acl|getuser +multi +exec +hset +hdel +hgetall +ping ~rekey:*"

// Redis is a running Redis server.
type Redis struct {
	Host string
	Port int
	Dir  string
	// LogPath receives the server's log.
	LogPath string
	// DefaultPassword logs in as the default user (full access);
	// AdminPassword as RedisAdmin.
	DefaultPassword string
	AdminPassword   string

	mu   sync.Mutex
	proc *process
	acct account
	bin  string
}

// StartRedis starts a server for the test (no persistence) with the
// admin user, and kills it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server not installed (Debian package redis-server; testenv/test-all.sh installs it)")
		return nil
	}
	acct, err := serviceAccount("redis")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rekey-redis-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := acct.chown(dir); err != nil {
		t.Fatal(err)
	}
	s := &Redis{Host: "127.0.0.1", Dir: dir, LogPath: filepath.Join(dir, "redis.log"), DefaultPassword: RandomHex(16), AdminPassword: RandomHex(16), acct: acct, bin: bin}
	if s.Port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("redis log (%s):\n%s", s.LogPath, tail(s.LogPath, 30))
		}
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := s.Client(t, "default", s.DefaultPassword)
	ctx := context.Background()
	args := []any{"ACL", "SETUSER", RedisAdmin, "on", ">" + s.AdminPassword}
	for _, r := range splitRules(RedisAdminRules) {
		args = append(args, r)
	}
	if err := c.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("creating the redis admin: %v", err)
	}
	return s
}

func splitRules(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// Start starts the server and waits until it answers.
func (s *Redis) Start() error {
	cmd := s.acct.command(s.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--logfile", s.LogPath, "--daemonize", "no", "--requirepass", s.DefaultPassword, "--protected-mode", "yes")
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting redis: %w", err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "default", Password: s.DefaultPassword, MaxRetries: -1})
		err := c.Ping(ctx).Err()
		_ = c.Close()
		if err == nil {
			return nil
		}
		if p.exited() {
			return errors.New("redis exited: " + tail(s.LogPath, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis did not answer: %w", err)
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// Kill stops the server with SIGKILL.
func (s *Redis) Kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	p.kill()
}

// Addr is host:port.
func (s *Redis) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }

// Client returns a client logged in as user, closed when the test ends.
func (s *Redis) Client(t testing.TB, user, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: password, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Login opens a new connection as user with password and runs PING.
func (s *Redis) Login(ctx context.Context, user, password string) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: password, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	return c.Ping(ctx).Err()
}
