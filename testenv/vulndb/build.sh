#!/bin/sh
# build.sh prints the path of an offline Go vulnerability database that
# `govulncheck -db file://DIR` reads, building it only when no cached copy
# exists. The data comes from the golang.org/x/vulndb module, served by the
# Go module proxy; its own cmd/gendb converts it (about a minute).
#
# The database is cached outside the checkout, keyed by the vulndb version:
#   ${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}/vulndb-<version>
# Bump VULNDB_VERSION to take newer advisories (go list -m golang.org/x/vulndb@latest).
# Progress goes to stderr; only the path goes to stdout.
set -eu

version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
cache=${REKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekey}
out="$cache/vulndb-$version"

if [ -f "$out/index/db.json" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work" "$out.tmp.$$"' EXIT INT TERM
echo "building the offline vulnerability database golang.org/x/vulndb@$version (about a minute)" >&2
src=$(cd "$work" && go mod download -json "golang.org/x/vulndb@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "vulndb: module download failed" >&2; exit 1; }
cp -R "$src" "$work/repo"
chmod -R u+w "$work/repo"
(
	cd "$work/repo"
	git init -q
	git add -A
	git -c user.name=rekey -c user.email=rekey@localhost commit -q -m "vulndb $version"
	go run ./cmd/gendb -repo . -out "$out.tmp.$$"
) >&2
mv "$out.tmp.$$" "$out"
trap - EXIT INT TERM
rm -rf "$work"
echo "$out"
