#!/bin/sh
# probe-new-key.sh: the "test" probe. rekey passes the new key in the
# environment (pass_key = true), never on the command line; this asks the
# key service whether it accepts it.
set -eu
printf '%s' "$REKEY_KEY_API_KEY" | "$(dirname "$0")/keyservice.sh" auth -
