# Three rekey instances, on three hosts, share one journal in an etcd
# cluster: deploy this same file on each. One instance owns every policy
# and rotates; the others stand by and take over within lease_ttl when it
# dies (see "High availability on etcd" in the README). Each instance
# names itself by its host name (set instance = "..." to choose) and keeps
# its control socket and audit file in its own state_dir.
#
# Whatever instance owns the policies must reach the same providers, sinks
# and dependents: use shared sinks (Vault KV here), not files on one host.
state_dir = "/var/lib/rekey"

journal "etcd" {
  endpoints = ["https://etcd-1.internal:2379", "https://etcd-2.internal:2379", "https://etcd-3.internal:2379"]
  prefix    = "/rekey/prod/"
  ca_file   = "/etc/rekey/etcd-ca.pem"
  cert_file = "/etc/rekey/etcd-client.pem"
  key_file  = "/etc/rekey/etcd-client-key.pem"
  lease_ttl = "10s"
}

server {
  listen = "127.0.0.1:9464"
}

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

policy "billing-webhook-secret" {
  every = "30d"

  provider "random" {
    bytes    = 32
    encoding = "hex"
    field    = "webhook_secret"
  }

  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "billing/webhook"
    fields = {
      webhook_secret = "webhook_secret"
    }
  }

  probe "http" {
    target = "dependent"
    url    = "https://billing.internal/healthz"
  }

  revoke {
    after = "1h"
  }
}
