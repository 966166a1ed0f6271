#!/bin/sh
# Runs after the package's files are removed. The rekey user, /etc/rekey
# and the journal in /var/lib/rekey are kept: the journal knows which keys
# rekey created, and a reinstall continues from it.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
