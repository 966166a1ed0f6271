#!/bin/sh
# Checks the key handed to an exec probe: the token must equal $EXPECTED
# and the key id must be set. Prints a message on stderr when it does not.
if [ "${REKEY_KEY_TOKEN-}" != "$EXPECTED" ]; then
	echo "the API refused the token" >&2
	exit 7
fi
if [ "${REKEY_KEY_ID-}" != "key-0042" ]; then
	echo "REKEY_KEY_ID is '${REKEY_KEY_ID-}'" >&2
	exit 8
fi
exit 0
