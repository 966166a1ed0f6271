#!/bin/sh
# Install rekey from a release tarball (or this directory of the source
# tree) as a systemd service:
#
#   sudo ./install.sh [--prefix /usr/local] [--binary ./rekey] [--no-user]
#
# It installs the binary to PREFIX/bin (default /usr/local/bin), the unit
# to /etc/systemd/system/rekey.service (ExecStart pointing at that binary),
# creates the system user rekey, /var/lib/rekey (0700) and /etc/rekey, and
# writes /etc/rekey/rekey.hcl only if it does not exist. It never enables or
# starts the service. Running it again upgrades the binary and the unit and
# leaves the configuration alone.
#
# DESTDIR=/some/dir stages the files under that directory instead (for
# packaging and tests): no user is created, no ownership changed, systemd
# is not told.
set -eu

usage() {
	echo "usage: $0 [--prefix DIR] [--binary FILE] [--no-user]" >&2
	exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/usr/local
BINARY=
CREATE_USER=true
while [ $# -gt 0 ]; do
	case $1 in
		--prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
		--prefix=*) PREFIX=${1#--prefix=}; shift ;;
		--binary) [ $# -ge 2 ] || usage; BINARY=$2; shift 2 ;;
		--binary=*) BINARY=${1#--binary=}; shift ;;
		--no-user) CREATE_USER=false; shift ;;
		-h | --help) usage ;;
		*) echo "$0: unknown option $1" >&2; usage ;;
	esac
done
case $PREFIX in
	/*) ;;
	*) echo "$0: --prefix must be an absolute path" >&2; exit 2 ;;
esac
DESTDIR=${DESTDIR:-}
if [ -n "$DESTDIR" ]; then
	CREATE_USER=false
fi

if [ -z "$BINARY" ]; then
	for candidate in "$HERE/rekey" "$HERE/../rekey" ./rekey; do
		if [ -f "$candidate" ]; then
			BINARY=$candidate
			break
		fi
	done
fi
if [ -z "$BINARY" ] || [ ! -f "$BINARY" ]; then
	echo "$0: no rekey binary found; pass --binary PATH (build one with: go build ./cmd/rekey)" >&2
	exit 1
fi
for f in rekey.service rekey.hcl; do
	if [ ! -f "$HERE/$f" ]; then
		echo "$0: $HERE/$f is missing; run install.sh from the unpacked release or from install/ in the source tree" >&2
		exit 1
	fi
done
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
	echo "$0: run as root (or set DESTDIR to stage the files)" >&2
	exit 1
fi

BINDIR=$PREFIX/bin
UNITDIR=/etc/systemd/system
say() { echo "install.sh: $*"; }

if [ "$CREATE_USER" = true ]; then
	install -d -m 0700 /var/lib/rekey
	if ! getent group rekey >/dev/null 2>&1; then
		groupadd --system rekey
		say "created group rekey"
	fi
	if ! getent passwd rekey >/dev/null 2>&1; then
		useradd --system --gid rekey --home-dir /var/lib/rekey --no-create-home \
			--shell /usr/sbin/nologin --comment "rekey secrets rotation" rekey
		say "created user rekey"
	fi
fi

install -d -m 0755 "$DESTDIR$BINDIR" "$DESTDIR$UNITDIR" "$DESTDIR/etc/rekey"
install -d -m 0700 "$DESTDIR/var/lib/rekey"

# Replace the binary atomically, so that a running daemon is not disturbed.
install -m 0755 "$BINARY" "$DESTDIR$BINDIR/.rekey.new"
mv -f "$DESTDIR$BINDIR/.rekey.new" "$DESTDIR$BINDIR/rekey"
say "installed $BINDIR/rekey"

sed "s|^ExecStart=/usr/bin/rekey |ExecStart=$BINDIR/rekey |" "$HERE/rekey.service" >"$DESTDIR$UNITDIR/.rekey.service.new"
chmod 0644 "$DESTDIR$UNITDIR/.rekey.service.new"
mv -f "$DESTDIR$UNITDIR/.rekey.service.new" "$DESTDIR$UNITDIR/rekey.service"
say "installed $UNITDIR/rekey.service"

if [ -e "$DESTDIR/etc/rekey/rekey.hcl" ]; then
	say "kept the existing /etc/rekey/rekey.hcl"
else
	install -m 0640 "$HERE/rekey.hcl" "$DESTDIR/etc/rekey/rekey.hcl"
	say "installed /etc/rekey/rekey.hcl"
fi

if [ -z "$DESTDIR" ] && getent passwd rekey >/dev/null 2>&1; then
	chown rekey:rekey /var/lib/rekey
	chmod 0700 /var/lib/rekey
	chgrp rekey /etc/rekey/rekey.hcl
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if systemctl is-active --quiet rekey.service; then
		systemctl restart rekey.service
		say "restarted the running rekey service on the new binary"
	fi
fi

cat <<EOT
install.sh: done. Next:
  1. write policies in /etc/rekey/*.hcl and check them: $BINDIR/rekey validate /etc/rekey
  2. allow the paths your sinks write: systemctl edit rekey  (ReadWritePaths=...)
  3. start it: systemctl enable --now rekey
EOT
