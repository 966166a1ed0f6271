#!/bin/sh
# take-pooled-key.sh: create_command of examples/http-anthropic. The
# Anthropic Admin API cannot create keys, so an operator makes a few in the
# Console ahead of time and stores each in $POOL_DIR as a file
# <key id>.key (0600, owned by rekey's user) holding the key itself.
# This script hands out the first one by name: it moves it to $POOL_DIR/taken/,
# logs the rotation id it went to, and prints the key in the exec
# provider's create format. It never prints the key on stderr.
set -eu
pool=${POOL_DIR:?POOL_DIR is not set}
mkdir -p "$pool/taken"
file=
for f in "$pool"/*.key; do
	[ -f "$f" ] && file=$f && break
done
if [ -z "$file" ]; then
	echo "take-pooled-key: the pool $pool is empty: create a key in the Anthropic Console and store it as $pool/<key id>.key" >&2
	exit 1
fi
id=$(basename "$file" .key)
mv "$file" "$pool/taken/$id.key"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $id rotation=$REKEY_ROTATION_ID policy=$REKEY_POLICY" >> "$pool/taken/log"
key=$(cat "$pool/taken/$id.key")
printf '{"id": "%s", "value": {"api_key": "%s"}}\n' "$id" "$key"
