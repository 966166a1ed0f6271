#!/bin/sh
# A probe "exec" command: exits 0 when the inventory API accepts the new
# token (passed in REKEY_KEY_TOKEN with pass_key = true). Replace the URL
# with your service's.
set -eu
curl --fail --silent --show-error --max-time 10 \
	--header @- "https://inventory.internal/api/v1/ping?${1:---read-only}" <<HDR >/dev/null
Authorization: Bearer ${REKEY_KEY_TOKEN:?pass_key = true is needed}
HDR
