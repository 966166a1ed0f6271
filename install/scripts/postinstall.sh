#!/bin/sh
# Runs after the package's files are in place, on install and upgrade.
# Creates the system user and the directories; never starts the service:
# the operator writes policies first, then `systemctl enable --now rekey`.
set -e

# The home directory exists before the user, so adduser does not warn.
install -d -m 0700 /var/lib/rekey

if ! getent group rekey >/dev/null 2>&1; then
	if command -v addgroup >/dev/null 2>&1 && addgroup --help 2>&1 | grep -q -- --system; then
		addgroup --system rekey >/dev/null
	else
		groupadd --system rekey
	fi
fi
if ! getent passwd rekey >/dev/null 2>&1; then
	if command -v adduser >/dev/null 2>&1 && adduser --help 2>&1 | grep -q -- --system; then
		adduser --system --ingroup rekey --home /var/lib/rekey --no-create-home \
			--shell /usr/sbin/nologin --gecos "rekey secrets rotation" rekey >/dev/null
	else
		useradd --system --gid rekey --home-dir /var/lib/rekey --no-create-home \
			--shell /usr/sbin/nologin --comment "rekey secrets rotation" rekey
	fi
fi

# Configuration: owned by root, the settings file readable by rekey.
install -d -m 0755 -o root -g root /etc/rekey
chown root:rekey /etc/rekey/rekey.hcl 2>/dev/null || true
chmod 0640 /etc/rekey/rekey.hcl 2>/dev/null || true
# Journal: the service user only (systemd's StateDirectory= does the same).
install -d -m 0700 -o rekey -g rekey /var/lib/rekey

# deb: "configure PREVIOUS-VERSION" on upgrade; rpm: 2 on upgrade.
upgrade=false
case "${1:-}" in
	configure) [ -n "${2:-}" ] && upgrade=true ;;
	2) upgrade=true ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running daemon on the new binary (the journal
	# makes that safe mid-rotation); a stopped one stays stopped.
	if [ "$upgrade" = true ]; then
		systemctl try-restart rekey.service >/dev/null 2>&1 || true
	fi
fi
exit 0
