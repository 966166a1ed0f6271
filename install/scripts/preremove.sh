#!/bin/sh
# Runs before the package's files are removed (and, for rpm, before an
# upgrade's old files go: $1 is 1 then, and the service keeps running).
set -e

case "$1" in
	1 | upgrade | failed-upgrade)
		exit 0
		;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop rekey.service >/dev/null 2>&1 || true
	systemctl disable rekey.service >/dev/null 2>&1 || true
fi
exit 0
