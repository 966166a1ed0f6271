state_dir = "/var/lib/rekey"
