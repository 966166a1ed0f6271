#!/usr/bin/env bash
# test-all.sh sets up everything rekey's test suite needs on a fresh Debian
# machine that has only Go and apt, then runs the whole suite. It is the
# README's test command, and .ci/run runs exactly it.
#
#   bash testenv/test-all.sh
#
# What it sets up, all from Debian packages or the Go module proxy:
#   - postgresql, redis-server, mariadb-server (throwaway servers for the
#     database tests, testenv/dbtest)
#   - awscli (Debian's, an independent client for the AWS emulator's
#     conformance test); shellcheck (install scripts); systemd-analyze
#     (the unit); dpkg-deb and rpm (inspecting the built packages)
#   - kube-apiserver v1.34.2, built from the Go module proxy by
#     testenv/kube/build.sh and cached outside the checkout
#   - HashiCorp Vault v1.21.0, built from the Go module proxy by
#     testenv/vault/build.sh and cached outside the checkout
#   - Express Gateway 1.16.11 from the npm registry (Debian's nodejs and npm),
#     installed by testenv/expressgw/install.sh and cached outside the checkout
#   - prometheus (the prometheus probe's tests scrape a real test
#     application); etcd-server (serves the kube-apiserver)
#   - zsh and fish (the shell completion scripts run in real shells)
#   - staticcheck and govulncheck, run from the Go module proxy at pinned
#     versions; govulncheck reads an offline copy of the Go vulnerability
#     database built by testenv/vulndb/build.sh from golang.org/x/vulndb
#     and cached outside the checkout
#   - the Go toolchain named in go.mod (GOTOOLCHAIN), from the module proxy
# Servers (Vault, the AWS emulator, HTTP servers) are started by the tests
# themselves on 127.0.0.1 and stopped when they end.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and test with the patched toolchain pinned in go.mod's toolchain line
# (the module proxy serves it as golang.org/toolchain); machines default to
# GOTOOLCHAIN=local, which would ignore that line.
GOTOOLCHAIN=$(sed -n 's/^toolchain //p' go.mod)
export GOTOOLCHAIN

step() { printf '\n==> %s\n' "$*"; }

step "Debian packages"
missing=()
[ -x /usr/bin/aws ] || missing+=(awscli)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v rpm >/dev/null || missing+=(rpm)
command -v mariadbd >/dev/null || missing+=(mariadb-server)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v zsh >/dev/null || missing+=(zsh)
command -v fish >/dev/null || missing+=(fish)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "all present"
fi

step "Express Gateway 1.16.11 from npm (testenv/expressgw/install.sh)"
REKEY_EXPRESSGW_DIR=$(sh testenv/expressgw/install.sh)
export REKEY_EXPRESSGW_DIR
echo "$REKEY_EXPRESSGW_DIR"

step "kube-apiserver test server (testenv/kube/build.sh)"
REKEY_KUBE_APISERVER_BIN=$(sh testenv/kube/build.sh)
export REKEY_KUBE_APISERVER_BIN
echo "$REKEY_KUBE_APISERVER_BIN"

step "Vault test server (testenv/vault/build.sh)"
REKEY_VAULT_BIN=$(bash testenv/vault/build.sh)
export REKEY_VAULT_BIN
echo "$REKEY_VAULT_BIN"

# Tests that need a server fail instead of skipping when it is missing.
export REKEY_TEST_REQUIRE_SERVERS=1
export REKEY_TEST_PACKAGES=1

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted:"; echo "$unformatted"; exit 1
fi

step "go.mod is tidy"
go mod tidy -diff

step "go vet"
go vet ./...

step "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "known vulnerabilities (govulncheck, offline database)"
vulndb=$(sh testenv/vulndb/build.sh)
echo "database: $vulndb"
go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "file://$vulndb" ./...

step "cross-compile (windows/amd64, darwin/arm64)"
GOOS=windows GOARCH=amd64 go build -o /dev/null ./cmd/rekey
GOOS=darwin GOARCH=arm64 go build -o /dev/null ./cmd/rekey

step "fuzz the policy loader (30s)"
go test -run='^$' -fuzz=FuzzLoad -fuzztime=30s ./policies

# The engine, the daemon runner and its parts hold the concurrency; the CLI's
# tests mostly start rekey processes, where the race detector sees little and
# costs five minutes, so cmd/ runs once, without it, in the whole suite.
step "race detector on the engine and daemon (short mode)"
go test -race -short -count=1 ./rotator/... ./internal/...

step "the whole suite"
go test -count=1 -timeout 20m ./...
