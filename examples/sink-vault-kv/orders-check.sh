#!/bin/sh
# A probe "exec" command: asks the orders service to check its database
# connection with the credential it now reads from Vault.
set -eu
exec orders check --database
