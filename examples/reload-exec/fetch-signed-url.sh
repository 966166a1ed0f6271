#!/bin/sh
# A probe "exec" command: fetches $1 through nginx, which signs the request
# with the key it just reloaded; exits 0 when the fetch succeeds.
set -eu
curl --fail --silent --show-error --max-time 10 "${1:?usage: fetch-signed-url.sh URL}" >/dev/null
