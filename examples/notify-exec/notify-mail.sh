#!/bin/sh
# A notify "exec" command (README, "Notify exec"): mails the event, read as
# JSON on stdin, to the address given as the first argument.
set -eu
to=${1:?usage: notify-mail.sh ADDRESS}
{
	printf "Subject: rekey %s: %s\n\n" "${REKEY_EVENT:-event}" "${REKEY_POLICY:-}"
	cat
} | sendmail -- "$to"
