# A Vault AppRole secret id that lives one day. rekey creates each secret
# id with key_ttl (so that one it loses track of still dies by itself),
# learns its expiry from Vault, and rotates it expiry_lead before it
# expires: here 6 hours, whatever `every` says. While rotations fail, the
# on-call channel hears about it 4 hours and 1 hour before the expiry; an
# expired secret id is notified in any case.
vault "main" {
  address = "https://vault.internal:8200"
  ca_file = "/etc/rekey/vault-ca.pem"

  auth "token_file" {
    path = "/run/vault-agent/rekey-token"
  }
}

policy "billing-approle-secret-id" {
  every         = "7d"
  key_ttl       = "24h"
  expiry_lead   = "6h"
  expiry_notify = ["4h", "1h"]
  labels        = { env = "prod", team = "billing" }

  provider "vault_approle_secret_id" {
    connection = vault.main
    role_name  = "billing"
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "billing/approle"
  }

  probe "vault_login" {
    connection = vault.main
    read_path  = "secret/data/billing/config"
  }

  revoke {
    after = "10m"
  }

  notify "webhook" {
    url = "https://alerts.example.com/hooks/rekey"
    on  = ["expiring", "expired", "stuck", "compromised"]
  }
}
