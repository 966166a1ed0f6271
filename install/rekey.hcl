# /etc/rekey/rekey.hcl: rekey daemon settings.
#
# `rekey run -config /etc/rekey` (the systemd unit) reads every *.hcl file
# directly in /etc/rekey, in lexical order. Put each policy in a file of its
# own next to this one, e.g. /etc/rekey/payments-aws.hcl; examples are in
# /usr/share/doc/rekey/examples when the package ships them.
#
# Check changes with    rekey validate /etc/rekey
# and apply them with   systemctl reload rekey
# An invalid set is rejected as a whole; the last good one keeps running.
#
# Never write a secret in these files. Credentials that rekey itself needs
# (a Vault token, AppRole ids) live in files of mode 0600 owned by rekey,
# or better are handed over by systemd: see LoadCredential= in
# `systemctl cat rekey` and use the path /run/credentials/rekey.service/NAME.

# The embedded journal and its lock. systemd creates the directory
# (StateDirectory=rekey, mode 0700, owned by rekey).
state_dir = "/var/lib/rekey"

# log {
#   level  = "info" # debug, info, warn, error
#   format = "json" # json for the journal, console on a terminal
# }

# Prometheus metrics (/metrics), health (/healthz) and the local control
# API. Keep it on loopback, or behind a firewall.
# server {
#   listen = "127.0.0.1:9464"
# }
