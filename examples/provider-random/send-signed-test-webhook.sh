#!/bin/sh
# A probe "exec" command: sends a test event signed with the new HMAC key
# (passed in REKEY_KEY_SECRET with pass_key = true) to the receiver at $1,
# which answers 2xx only when the signature verifies.
set -eu
url=${1:?usage: send-signed-test-webhook.sh URL}
body='{"event":"rekey.test"}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "${REKEY_KEY_SIGNING_SECRET:?pass_key = true is needed}" -r | cut -d' ' -f1)
curl --fail --silent --show-error --max-time 10 -H "X-Signature-SHA256: $sig" \
	-H 'Content-Type: application/json' --data "$body" "$url" >/dev/null
