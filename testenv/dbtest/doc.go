// Package dbtest starts throwaway database servers for tests: PostgreSQL
// 15 (and, where installed, MariaDB and Redis) from the Debian packages
// that testenv/test-all.sh installs, as unprivileged processes in their own
// temporary directories, listening on 127.0.0.1 on random ports, stopped
// when the test ends.
//
// PostgreSQL starts from a copy of a template data directory made once by
// initdb and cached under the user's cache directory (about 1 s instead of
// 5 s). The template holds a superuser and a non-superuser admin role with
// only CREATEROLE and the predefined roles pg_signal_backend and
// pg_read_all_stats: the least privilege rekey's postgres provider needs.
//
// When a server's binaries are missing the test is skipped, unless
// REKEY_TEST_REQUIRE_SERVERS=1 (as in CI), which makes it fail.
//
// Proxy is a TCP forwarder that a test can cut, to simulate a connection
// lost in the middle of a call.
package dbtest
