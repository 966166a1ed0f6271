stat_dir = "/var/lib/rekey"
