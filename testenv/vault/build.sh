#!/bin/sh
# build.sh prints the path of a HashiCorp Vault v1.21.0 binary built from
# this nested module, building it only when no cached copy exists.
#
# The binary is cached outside the checkout, keyed by the hash of go.sum:
#   ${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}/vault-v1.21.0-<16 hex>
# A cold build takes about 11 minutes and 8 GB of Go caches; a warm one
# seconds. Progress goes to stderr; only the path goes to stdout, so that
#   export REKEY_VAULT_BIN="$(testenv/vault/build.sh)"
# works.
set -eu

version=v1.21.0
here=$(cd "$(dirname "$0")" && pwd)
cache=${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}
sum=$(sha256sum "$here/go.sum" | cut -c1-16)
bin="$cache/vault-$version-$sum"

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
echo "building vault $version into $bin (cold: about 11 minutes)" >&2
(cd "$here" && go build -trimpath -ldflags="-s -w" -o "$tmp" github.com/hashicorp/vault) >&2
"$tmp" version >&2
mv -f "$tmp" "$bin"
trap - EXIT INT TERM
echo "$bin"
