#!/bin/sh
# A reload "exec" command: sets the reports database user's password to the
# new one (REKEY_KEY_PASSWORD, with pass_key = true), so that the database
# and the file sink agree. psql reads the statement from stdin, so the
# password never appears in a process list.
set -eu
: "${REKEY_KEY_PASSWORD:?pass_key = true is needed}"
printf "ALTER USER reports PASSWORD '%s';\n" "$REKEY_KEY_PASSWORD" |
	psql --quiet --no-psqlrc --set ON_ERROR_STOP=1 --dbname reports >/dev/null
