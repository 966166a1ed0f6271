#!/bin/sh
# dependent.sh: the application that uses the key. It reads its key from the
# file that rekey's file sink writes (state/app/credentials.env) and calls
# the key service with it. "check" is the dependent probe: exit 0 when the
# application's key is accepted. "reload" is the reload hook.
set -eu
cd "$(dirname "$0")"
case "${1:-check}" in
reload)
	date -u +%Y-%m-%dT%H:%M:%SZ >state/app/reloaded-at
	;;
check)
	[ -r state/app/credentials.env ] || { echo "the application has no key yet" >&2; exit 1; }
	# credentials.env holds API_KEY="..." (the file sink's env format, which
	# shells and systemd's EnvironmentFile= both read).
	. ./state/app/credentials.env
	printf '%s' "$API_KEY" | ./keyservice.sh auth -
	;;
esac
