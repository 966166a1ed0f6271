# The AppRole secret id of the "orders" service, rotated every week. The
# new secret id is written next to the role id in Vault's KV store, where
# the service's deployment reads it; the old one is destroyed after a
# grace period. rekey's own token comes from Vault Agent's token sink.
vault "main" {
  address = "https://vault.internal:8200"
  ca_file = "/etc/rekey/vault-ca.pem"

  auth "token_file" {
    path = "/run/vault-agent/rekey-token"
  }
}

policy "orders-approle-secret-id" {
  every = "7d"

  provider "vault_approle_secret_id" {
    connection        = vault.main
    role_name         = "orders"
    ttl               = "30d"
    token_bound_cidrs = ["10.20.0.0/16"]
    metadata = {
      service = "orders"
    }
    max_secret_ids = 3
  }

  # {"role_id": "...", "secret_id": "..."}
  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "orders/approle"
  }

  # The new secret id logs in and its token can read the service's config.
  probe "vault_login" {
    connection = vault.main
    read_path  = "secret/data/orders/config"
  }

  revoke {
    after = "2h"
  }
}
