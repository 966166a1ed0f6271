# The key-auth credential of a Kong consumer, through the Kong Admin API.
# Each credential rekey creates carries the tags "rekey",
# "rekey-rotation:<rotation id>" and "rekey-policy:<policy>", so a key left
# by a crash is found and deleted. Kong cannot disable a key-auth
# credential: there is no deactivate step, the soak below relies on the
# dependent probe alone, and revoke.wait_unused is unavailable.
policy "orders-kong-key" {
  every = "30d"

  provider "kong" {
    admin_url = "https://kong-admin.internal:8444"
    workspace = "payments"
    consumer  = "orders-app"
    ca_file   = "/etc/ssl/internal/ca.pem"
    # Kong deletes the credential by itself after this long, should rekey
    # ever stop rotating it.
    ttl  = "60d"
    tags = ["team:orders"]

    # Kong Enterprise RBAC token (Kong-Admin-Token header).
    auth {
      token_file = "/etc/rekey/kong-admin-token"
    }
  }

  sink "file" {
    path   = "/etc/orders/kong-key"
    format = "raw"
    owner  = "orders"
  }

  # The new key passes the key-auth plugin (401 or 403 fail the probe).
  probe "http" {
    target        = "key"
    url           = "https://kong.internal:8443/orders/health"
    ca_file       = "/etc/ssl/internal/ca.pem"
    headers       = { apikey = "{{ .Key.key }}" }
    expect_status = 200
  }

  reload "exec" {
    command = ["systemctl", "reload", "orders.service"]
  }

  probe "http" {
    url           = "https://orders.internal:8443/healthz"
    ca_file       = "/etc/ssl/internal/ca.pem"
    expect_status = 200
  }

  revoke {
    after = "1h"
    soak  = "0s"
  }
}
