# The password of the "orders" application's PostgreSQL login, rotated
# every 30 days with no outage: two roles, orders_a and orders_b, take
# turns. Each rotation gives a new password to the role not in use (on
# the first rotation orders_b is created as a clone of orders_a: same
# memberships, and a member of orders_a so it holds its privileges), tests
# it, writes it to Vault KV where the application reads it, and locks the
# previous role (NOLOGIN) only after the grace period, once none of its
# sessions remain. Roles are never dropped.
vault "main" {
  address = "https://vault.internal:8200"
  ca_file = "/etc/rekey/vault-ca.pem"

  auth "token_file" {
    path = "/run/vault-agent/rekey-token"
  }
}

policy "orders-db" {
  every = "30d"
  # Each new password is set with VALID UNTIL 45 days on: a password
  # rekey lost track of (a crash, a lost journal) still dies by itself.
  key_ttl = "45d"

  provider "postgres" {
    host      = "db.internal"
    port      = 5432
    dbname    = "orders"
    sslmode   = "verify-full"
    strategy  = "alternating"
    usernames = ["orders_a", "orders_b"]

    # Sessions of the old role still open 1 hour after the rotation are
    # ended (pg_terminate_backend).
    terminate_sessions_after = "1h"

    # A role with CREATEROLE (not a superuser); its password is read from
    # Vault at each use.
    admin {
      username         = "rekey_admin"
      vault_connection = vault.main
      vault_path       = "secret/data/db/rekey-admin"
    }
  }

  # {"username": "orders_b", "password": "...", "host": ..., "port": ...,
  #  "dbname": "orders", "uri": "postgres://...", "engine": "postgres"}
  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "orders/db"
  }

  # The new password logs in and can read the application's table.
  probe "postgres" {
    query = "SELECT 1 FROM orders LIMIT 1"
  }

  revoke {
    after       = "2h"
    wait_unused = true
    soak        = "1h"
  }
}
