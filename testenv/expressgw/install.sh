#!/bin/sh
# install.sh prints the directory of an Express Gateway 1.16.11 installation
# (node_modules from the npm registry), installing it only when no cached
# copy exists. testenv/expressgw (the Go package) starts it on 127.0.0.1.
#
# The installation is cached outside the checkout, keyed by its inputs
# (package.json, package-lock.json, this script and node's major version):
#   ${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}/express-gateway-1.16.11-<16 hex>
# A cold install takes about 3 minutes; a cached one returns at once.
# Progress goes to stderr; only the path goes to stdout, so that
#   export REKEY_EXPRESSGW_DIR="$(sh testenv/expressgw/install.sh)"
# works.
set -eu

version=1.16.11
here=$(cd "$(dirname "$0")" && pwd)
cache=${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "expressgw: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
nodemajor=$(node -p 'process.versions.node.split(".")[0]')
key=$( { cat "$here/install.sh" "$here/package.json"; [ ! -f "$here/package-lock.json" ] || cat "$here/package-lock.json"; echo "node$nodemajor"; } | sha256sum | cut -c1-16)
dir="$cache/express-gateway-$version-$key"

if [ -f "$dir/node_modules/express-gateway/package.json" ] && [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
tmp="$dir.tmp.$$"
trap 'rm -rf "$tmp"' EXIT INT TERM
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$here/package.json" "$tmp/"
echo "installing express-gateway $version into $dir (cold: about 3 minutes)" >&2
start=$(date +%s)
if [ -f "$here/package-lock.json" ]; then
	cp "$here/package-lock.json" "$tmp/"
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error) >&2
else
	(cd "$tmp" && npm install --no-audit --no-fund --loglevel=error) >&2
fi
got=$(node -p "require('$tmp/node_modules/express-gateway/package.json').version")
[ "$got" = "$version" ] || { echo "expressgw: installed $got, want $version" >&2; exit 1; }
echo "installed in $(( $(date +%s) - start ))s" >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT INT TERM
echo "$dir"
