#!/bin/sh
# A fake credential system for the exec provider's tests: keys are files
# under $STATE. Usage: keystore.sh create|delete|list|deactivate|activate|last_used|use
set -eu
cmd=$1
env | grep '^REKEY_' | sort > "$STATE/env.$cmd"
case $cmd in
create)
	id="key-$(printf %s "$REKEY_ROTATION_ID" | cksum | cut -d' ' -f1)"
	if [ ! -f "$STATE/$id.status" ]; then
		n=$(find "$STATE" -name '*.status' | wc -l)
		if [ "$n" -ge "${LIMIT:-2}" ]; then
			echo "limit of ${LIMIT:-2} keys reached" >&2
			exit 1
		fi
		od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$STATE/$id.secret"
		printf %s "$REKEY_ROTATION_ID" > "$STATE/$id.rotation"
		date -u +%Y-%m-%dT%H:%M:%SZ > "$STATE/$id.created"
		echo active > "$STATE/$id.status"
	fi
	printf '{"id": "%s", "value": {"token": "%s"}, "created_at": "%s"}\n' \
		"$id" "$(cat "$STATE/$id.secret")" "$(cat "$STATE/$id.created")"
	;;
delete)
	rm -f "$STATE/$REKEY_KEY_ID".*
	;;
list)
	printf '{"keys": ['
	sep=""
	for f in "$STATE"/*.status; do
		[ -e "$f" ] || continue
		id=$(basename "$f" .status)
		printf '%s{"id": "%s", "status": "%s", "created_at": "%s", "rotation_id": "%s"}' \
			"$sep" "$id" "$(cat "$f")" "$(cat "$STATE/$id.created")" "$(cat "$STATE/$id.rotation")"
		sep=", "
	done
	printf ']}\n'
	;;
deactivate | activate)
	if [ ! -f "$STATE/$REKEY_KEY_ID.status" ]; then
		echo "no such key: $REKEY_KEY_ID" >&2
		exit 1
	fi
	if [ "$cmd" = deactivate ]; then echo inactive; else echo active; fi > "$STATE/$REKEY_KEY_ID.status"
	;;
last_used)
	if [ -f "$STATE/$REKEY_KEY_ID.used" ]; then
		printf '{"last_used": "%s"}\n' "$(cat "$STATE/$REKEY_KEY_ID.used")"
	else
		echo '{"last_used": null}'
	fi
	;;
*)
	echo "unknown command $cmd" >&2
	exit 2
	;;
esac
