# The password of the "billing" application's MariaDB account, rotated
# every 30 days with no outage: two accounts, billing_a and billing_b, take
# turns. Each rotation gives a new password to the locked one (created on
# first use with billing_a's grants, roles and default role), unlocks it,
# tests it, writes it to a file the application reads at each new
# connection, and locks the previous account (ACCOUNT LOCK) after the grace
# period. Accounts are never dropped.
policy "billing-db" {
  every = "30d"
  # Each new password gets PASSWORD EXPIRE INTERVAL 45 DAY (MariaDB and
  # MySQL count password lifetimes in whole days).
  key_ttl = "45d"

  provider "mysql" {
    host      = "db.internal"
    dbname    = "billing"
    usernames = ["billing_a", "billing_b"]
    user_host = "10.20.%"

    admin {
      username     = "rekey_admin"
      password_env = "REKEY_MYSQL_ADMIN_PASSWORD"
    }
  }

  sink "file" {
    path   = "/etc/billing/db.json"
    format = "json"
    fields = { user = "username", password = "password", host = "host", port = "port", database = "dbname" }
    group  = "billing"
    mode   = "0640"
  }

  probe "mysql" {
    query = "SELECT 1 FROM invoices LIMIT 1"
  }

  revoke {
    after       = "1h"
    wait_unused = true
    soak        = "30m"
  }
}
