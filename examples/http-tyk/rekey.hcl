# A Tyk key for the orders API, through the Tyk Gateway API (/tyk/keys).
# Tyk must hash keys (hash_keys: true, the default): rekey manages the key
# by its hash and never keeps the key itself outside the sinks. Tyk answers
# 403 for a key that was deleted: rekey treats 401 and 403 alike.
policy "orders-tyk-key" {
  every = "30d"
  # Sent as the key's "expires" (seconds since 1970): Tyk refuses the key
  # after 45 days even if rekey lost track of it.
  key_ttl = "45d"

  provider "http" {
    base_url = "https://tyk-gateway.internal:8080"
    target   = "tyk:orders-api:orders-app"
    ca_file  = "/etc/ssl/internal/ca.pem"
    headers  = { X-Tyk-Authorization = "{{ .Token }}" }

    # The Tyk secret, from a file readable only by rekey.
    auth {
      token_file = "/etc/rekey/tyk-secret"
    }

    # GET /tyk/keys lists every key of the gateway, without metadata: it
    # cannot tell rekey's keys apart. A key left by a crash carries the
    # rotation id in its meta_data; find it there.
    orphans = "manual"

    create {
      path   = "/tyk/keys/create"
      body   = <<-EOT
        {"alias": "orders-app", "org_id": "acme", "expires": {{ if .KeyTTL }}{{ .ExpiresAtUnix }}{{ else }}0{{ end }},
         "access_rights": {"orders-api": {"api_id": "orders-api", "api_name": "orders", "versions": ["Default"]}},
         "tags": ["rekey"], "meta_data": {"rekey_rotation_id": {{ json .RotationID }}}}
      EOT
      id     = "key_hash"
      fields = { api_key = "key" }
    }
    delete {
      path = "/tyk/keys/{{ .KeyID }}?hashed=true"
    }
  }

  sink "file" {
    path   = "/etc/orders/tyk-key"
    format = "raw"
    owner  = "orders"
    fields = { value = "api_key" }
  }

  probe "http" {
    target        = "key"
    url           = "https://tyk-gateway.internal:8080/orders/health"
    ca_file       = "/etc/ssl/internal/ca.pem"
    headers       = { Authorization = "{{ .Key.api_key }}" }
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
    after = "2h"
  }
}
