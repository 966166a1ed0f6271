#!/bin/sh
# A probe "exec" command: the dependent inventory-sync reports whether it
# still reaches the upstream API with the token it was reloaded with.
set -eu
exec inventory-sync status --check-upstream
