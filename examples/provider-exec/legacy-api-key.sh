#!/bin/sh
# The exec provider's commands for the legacy reporting API (README,
# "Provider exec"): rekey runs it as `legacy-api-key.sh OPERATION`. It wraps
# the vendor's admin CLI, `legacy-admin`, whose --json output already has the
# shapes rekey expects; adapt the calls to your vendor's tool.
set -eu
creds=${LEGACY_ADMIN_CREDENTIALS_FILE:?set in the policy's env}
admin() {
	legacy-admin --url "${LEGACY_API_URL:?}" --credentials "$creds" \
		--account "${LEGACY_API_ACCOUNT:?}" --json "$@"
}
case ${1:-} in
create) admin keys create --tag "rekey-rotation=${REKEY_ROTATION_ID:?}" ;;
delete) admin keys delete "${REKEY_KEY_ID:?}" ;;
list) admin keys list ;;
disable) admin keys disable "${REKEY_KEY_ID:?}" ;;
enable) admin keys enable "${REKEY_KEY_ID:?}" ;;
last-used) admin keys last-used "${REKEY_KEY_ID:?}" ;;
*)
	echo "usage: $0 create|delete|list|disable|enable|last-used" >&2
	exit 2
	;;
esac
