# The password of one PostgreSQL role, changed in place every week. A role
# has one password, so the old one stops working at once: the reload hook
# makes the application read the new one from its file, and the dependent
# probe checks that it did. Prefer strategy = "alternating" where the
# application can log in as either of two roles.
policy "reports-db" {
  every = "7d"

  provider "postgres" {
    host     = "127.0.0.1"
    dbname   = "reports"
    sslmode  = "disable"
    username = "reports"

    admin {
      username      = "rekey_admin"
      password_file = "/etc/rekey/pg-admin.password"
    }
  }

  sink "file" {
    path   = "/etc/reports/db.env"
    format = "env"
    fields = { PGUSER = "username", PGPASSWORD = "password", PGHOST = "host", PGPORT = "port", PGDATABASE = "dbname" }
    group  = "reports"
    mode   = "0640"
  }

  probe "postgres" {
    sslmode = "disable"
  }

  reload "exec" {
    command = ["systemctl", "reload", "reports.service"]
  }

  probe "http" {
    target = "dependent"
    url    = "http://127.0.0.1:8085/healthz/db"
  }

  revoke {
    after = "10m"
  }
}
