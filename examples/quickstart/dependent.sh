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
	# credentials.env holds API_KEY='...' (the env format, shell-quoted).
	key=$(sed -n "s/^API_KEY='\(.*\)'$/\1/p" state/app/credentials.env)
	printf '%s' "$key" | ./keyservice.sh auth -
	;;
esac
