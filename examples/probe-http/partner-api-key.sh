#!/bin/sh
# The exec provider's commands for this example (README, "Provider exec"):
# rekey runs it as `partner-api-key.sh OPERATION [ARG...]`, and it answers with the JSON
# the contract describes. It delegates to `partner-api-key`, the tool that manages these
# keys at your site; replace that call with yours.
set -eu
op=${1:?usage: partner-api-key.sh OPERATION [ARG...]}
shift
exec partner-api-key "$op" "$@" --rotation-id "${REKEY_ROTATION_ID:-}" --key-id "${REKEY_KEY_ID:-}" --json
