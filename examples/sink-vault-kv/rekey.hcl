# A database password that services read from Vault's KV store. rekey
# generates it and writes it as a new KV v2 version with check-and-set, so
# a write by anyone else is detected instead of overwritten; a failed
# rotation restores the old data as a further version (history is kept).
#
# rekey logs in to Vault with its own AppRole; Vault Agent (or your
# provisioning) delivers the role id and a response-wrapped secret id.
vault "main" {
  address         = "https://vault.internal:8200"
  ca_file         = "/etc/rekey/vault-ca.pem"
  request_timeout = "15s"

  auth "approle" {
    role_id_file          = "/etc/rekey/vault-role-id"
    secret_id_file        = "/run/rekey/vault-secret-id"
    secret_id_wrapped     = true
    remove_secret_id_file = true
  }
}

policy "orders-db-password" {
  every = "30d"

  provider "random" {
    length = 40
    field  = "password"
  }

  # {"password": "...", "PGPASSWORD": "..."} at secret/orders/db, as a new
  # version of a KV v2 mount.
  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "orders/db"
    fields = {
      password   = "password"
      PGPASSWORD = "password"
    }
    custom_metadata = {
      owner = "team-orders"
    }
  }

  reload "exec" {
    command = ["systemctl", "reload", "orders.service"]
  }

  # The dependent works with the new password: its own readiness check.
  probe "exec" {
    target  = "dependent"
    command = ["./orders-check.sh"]
  }

  revoke {
    after = "1h"
  }
}
