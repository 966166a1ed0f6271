#!/bin/sh
# Build rekey's .deb and .rpm packages into dist/.
#
#   install/build-packages.sh VERSION
#
# VERSION is a package version such as 1.2.3. GOARCH selects the target
# architecture (default: the build machine's). REKEY_BINARY may name an
# already built linux binary to package instead of building cmd/rekey.
# nfpm is built from install/tools/go.mod, so that its dependencies stay
# out of the product's go.mod.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 VERSION" >&2
	exit 2
fi
VERSION=$1
case $VERSION in
	v[0-9]*) VERSION=${VERSION#v} ;;
esac
case $VERSION in
	[0-9]*) ;;
	*)
		echo "$0: VERSION must start with a digit, such as 1.2.3 (got '$1')" >&2
		exit 2
		;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Release binaries are built with the patched toolchain pinned in go.mod.
GOTOOLCHAIN=${GOTOOLCHAIN_OVERRIDE:-$(sed -n 's/^toolchain //p' go.mod)}
export GOTOOLCHAIN
GOARCH=${GOARCH:-$(go env GOARCH)}
DIST=${DIST:-$ROOT/dist}
mkdir -p "$DIST"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT INT TERM

if [ -z "${REKEY_BINARY:-}" ]; then
	if [ ! -d cmd/rekey ] || ! ls cmd/rekey/*.go >/dev/null 2>&1; then
		echo "$0: cmd/rekey does not exist yet: there is no rekey command to package" >&2
		exit 1
	fi
	REKEY_BINARY=$BUILD/rekey
	if ! CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH go build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" -o "$REKEY_BINARY" ./cmd/rekey; then
		echo "$0: building cmd/rekey failed; fix the build, or set REKEY_BINARY to a built binary" >&2
		exit 1
	fi
fi
if [ ! -f "$REKEY_BINARY" ]; then
	echo "$0: REKEY_BINARY=$REKEY_BINARY does not exist" >&2
	exit 1
fi

NFPM=${NFPM:-}
if [ -z "$NFPM" ]; then
	NFPM=$BUILD/nfpm
	(cd install/tools && go build -o "$NFPM" github.com/goreleaser/nfpm/v2/cmd/nfpm)
fi

export VERSION GOARCH REKEY_BINARY
for packager in deb rpm; do
	"$NFPM" package --config install/nfpm.yaml --packager "$packager" --target "$DIST/"
done
ls -l "$DIST"
