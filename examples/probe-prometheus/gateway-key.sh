#!/bin/sh
# The exec provider's commands for this example (README, "Provider exec"):
# rekey runs it as `gateway-key.sh OPERATION [ARG...]`, and it answers with the JSON
# the contract describes. It delegates to `gateway-key`, the tool that manages these
# keys at your site; replace that call with yours.
set -eu
op=${1:?usage: gateway-key.sh OPERATION [ARG...]}
shift
exec gateway-key "$op" "$@" --rotation-id "${REKEY_ROTATION_ID:-}" --key-id "${REKEY_KEY_ID:-}" --json
