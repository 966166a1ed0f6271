#!/bin/sh
# The exec provider's commands for this example (README, "Provider exec"):
# rekey runs it as `orders-db.sh OPERATION [ARG...]`, and it answers with the JSON
# the contract describes. It delegates to `orders-db`, the tool that manages these
# keys at your site; replace that call with yours.
set -eu
op=${1:?usage: orders-db.sh OPERATION [ARG...]}
shift
exec orders-db "$op" "$@" --rotation-id "${REKEY_ROTATION_ID:-}" --key-id "${REKEY_KEY_ID:-}" --json
