#!/bin/sh
# keyservice.sh: a stand-in for a system that issues API keys (an API
# gateway, a SaaS admin API), so that the quickstart runs the whole rotation
# protocol on one machine. Keys live in state/keystore, one file each (0600).
# It implements rekey's exec provider contract (create, list, delete,
# deactivate, activate) and an "auth" check used by the probes. It appends
# every change to state/keystore/ledger.log (ids and times, never secrets).
set -eu
cd "$(dirname "$0")"
store=state/keystore
umask 077
# The application's directory is where the file sink writes its key.
mkdir -p "$store" state/app

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
field() { sed -n "s/^$1=//p" "$2"; }
ledger() { printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$1" "$2" >>"$store/ledger.log"; }

case "${1:-}" in
create)
	for f in "$store"/*.key; do
		[ -e "$f" ] || continue
		if [ "$(field rotation "$f")" = "$REKEY_ROTATION_ID" ]; then existing=$f; fi
	done
	if [ -n "${existing:-}" ]; then
		id=$(basename "$existing" .key)
	else
		id="qs-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
		# QS_SECRET_PREFIX lets tests recognise every secret issued (canaries).
		secret="${QS_SECRET_PREFIX:-}$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
		printf 'rotation=%s\nstatus=active\ncreated=%s\nsecret=%s\n' "$REKEY_ROTATION_ID" "$(now)" "$secret" >"$store/$id.tmp"
		mv "$store/$id.tmp" "$store/$id.key"
		ledger create "$id"
	fi
	f="$store/$id.key"
	printf '{"id":"%s","value":{"api_key":"%s"},"created_at":"%s"}\n' "$id" "$(field secret "$f")" "$(field created "$f")"
	;;
list)
	sep=""
	printf '{"keys":['
	for f in "$store"/*.key; do
		[ -e "$f" ] || continue
		printf '%s{"id":"%s","status":"%s","created_at":"%s","rotation_id":"%s"}' "$sep" "$(basename "$f" .key)" \
			"$(field status "$f")" "$(field created "$f")" "$(field rotation "$f")"
		sep=","
	done
	printf ']}\n'
	;;
delete)
	if [ -e "$store/$REKEY_KEY_ID.key" ]; then
		rm -f "$store/$REKEY_KEY_ID.key"
		ledger delete "$REKEY_KEY_ID"
	fi
	;;
deactivate | activate)
	f="$store/$REKEY_KEY_ID.key"
	[ -e "$f" ] || { echo "no key $REKEY_KEY_ID" >&2; exit 1; }
	status=active
	[ "$1" = deactivate ] && status=inactive
	sed "s/^status=.*/status=$status/" "$f" >"$f.tmp" && mv "$f.tmp" "$f"
	ledger "$1" "$REKEY_KEY_ID"
	;;
auth)
	# auth SECRET_FILE|-: exit 0 when the secret read is an active key.
	secret=$(if [ "$2" = - ]; then cat; else cat "$2"; fi)
	for f in "$store"/*.key; do
		[ -e "$f" ] || continue
		if [ "$(field secret "$f")" = "$secret" ] && [ "$(field status "$f")" = active ]; then exit 0; fi
	done
	echo "key not accepted" >&2
	exit 1
	;;
*)
	echo "usage: keyservice.sh create|list|delete|deactivate|activate|auth" >&2
	exit 2
	;;
esac
