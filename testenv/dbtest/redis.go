//go:build unix

package dbtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/testenv/internal/testproc"
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

	server
	bin string
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
	acct, dir := serverDir(t, "redis", "rekey-redis-*", "")
	s := &Redis{Host: "127.0.0.1", Dir: dir, LogPath: filepath.Join(dir, "redis.log"), DefaultPassword: RandomHex(16), AdminPassword: RandomHex(16), server: server{acct: acct}, bin: bin}
	if s.Port, err = testproc.FreePort(); err != nil {
		t.Fatal(err)
	}
	startForTest(t, "redis", s.LogPath, 30, s, s.Start)
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
	p, err := testproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting redis: %w", err)
	}
	s.setProc(p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return waitAnswer(ctx, "redis", s.LogPath, p, 30*time.Millisecond, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "default", Password: s.DefaultPassword, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
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
