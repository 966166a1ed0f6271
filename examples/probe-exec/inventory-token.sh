#!/bin/sh
# The exec provider's commands for this example (README, "Provider exec"):
# rekey runs it as `inventory-token.sh OPERATION [ARG...]`, and it answers with the JSON
# the contract describes. It delegates to `inventory-token`, the tool that manages these
# keys at your site; replace that call with yours.
set -eu
op=${1:?usage: inventory-token.sh OPERATION [ARG...]}
shift
exec inventory-token "$op" "$@" --rotation-id "${REKEY_ROTATION_ID:-}" --key-id "${REKEY_KEY_ID:-}" --json
