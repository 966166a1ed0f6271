# A Vault token handed to a batch job through a file. The vault_login probe
# checks the new token (method "token") before the job is given it; it
# uses the connection only for the address and TLS settings, never the
# connection's own token. With no auth block, the connection uses the
# VAULT_TOKEN environment variable (for interactive `rekey rotate` runs).
vault "main" {
  address   = "https://vault.internal:8200"
  ca_file   = "/etc/rekey/vault-ca.pem"
  namespace = "batch"
}

policy "nightly-export-vault-token" {
  every = "7d"

  provider "exec" {
    create = ["./vault-token.sh", "create", "--policy=nightly-export"]
    delete = ["./vault-token.sh", "revoke-accessor"]
  }

  sink "file" {
    path   = "/etc/nightly-export/vault-token"
    format = "raw"
    fields = { token = "token" }
  }

  probe "vault_login" {
    connection  = vault.main
    method      = "token"
    token_field = "token"
    read_path   = "secret/data/nightly-export/config"
    timeout     = "1m"
  }

  revoke {
    after = "12h"
  }
}
