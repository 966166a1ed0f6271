# The password of the "sessions" service's Redis ACL user, rotated every
# 30 days with no outage: an ACL user holds several passwords at once, so
# the new one is added next to the old (ACL SETUSER sessions #HASH), served
# through Vault KV, and the old one is removed after the grace period. The
# soak removes the old password but keeps its hash, so a forgotten client
# can be let back in at once.
vault "main" {
  address = "https://vault.internal:8200"

  auth "token_file" {
    path = "/run/vault-agent/rekey-token"
  }
}

policy "sessions-redis" {
  every = "30d"

  provider "redis" {
    host     = "cache.internal"
    port     = 6380
    tls      = true
    ca_file  = "/etc/rekey/redis-ca.pem"
    username = "sessions"

    admin {
      username      = "rekey_admin"
      password_file = "/etc/rekey/redis-admin.password"
    }
  }

  # {"username": "sessions", "password": "...", "uri": "rediss://...", ...}
  sink "vault_kv" {
    connection = vault.main
    mount      = "secret"
    path       = "sessions/redis"
  }

  # The new password logs in and may read the service's keys.
  probe "redis" {
    tls     = true
    ca_file = "/etc/rekey/redis-ca.pem"
    query   = ["EXISTS", "sessions:config"]
  }

  revoke {
    after = "2h"
    soak  = "1h"
  }
}
