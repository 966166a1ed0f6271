#!/bin/sh
# build.sh prints the path of a kube-apiserver v1.34.2 binary built from this
# nested module, building it only when no cached copy exists.
#
# The binary is cached outside the checkout, keyed by the hash of go.sum:
#   ${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}/kube-apiserver-v1.34.2-<16 hex>
# A cold build takes about 6 minutes on 2 cores with modules downloaded
# (more while other builds run); a cached one nothing. Progress goes to
# stderr; only the path goes to stdout.
set -eu

version=v1.34.2
here=$(cd "$(dirname "$0")" && pwd)
cache=${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}
sum=$(sha256sum "$here/go.sum" | cut -c1-16)
bin="$cache/kube-apiserver-$version-$sum"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
echo "building kube-apiserver $version into $bin (cold: about 6 minutes)" >&2
(cd "$here" && go build -trimpath -ldflags="-s -w" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2
"$tmp" --version >&2
mv -f "$tmp" "$bin"
trap - EXIT INT TERM
echo "$bin"
