# The key-auth credential of an Express Gateway consumer, through the
# gateway's admin API. The admin API has no authentication of its own:
# bind it to 127.0.0.1 (admin.host in gateway.config.yml) and run rekey on
# the same machine. Express Gateway cannot delete a credential, so
# "delete" deactivates it for good, and list shows only active ones.
policy "orders-gateway-key" {
  every = "30d"

  provider "http" {
    base_url = "http://127.0.0.1:9876"
    target   = "express-gateway:orders-app"

    # The key id carries the rotation id: a key left by a crash is found.
    create {
      path       = "/credentials"
      body       = "{\"consumerId\": \"orders-app\", \"type\": \"key-auth\", \"credential\": {\"keyId\": \"rekey-{{ .RotationID }}\"}}"
      id         = "keyId"
      fields     = { key_id = "keyId", key_secret = "keySecret" }
      created_at = "createdAt"
    }
    list {
      path               = "/credentials/orders-app"
      items              = "credentials[?type == 'key-auth' && isActive]"
      id                 = "keyId"
      status             = "isActive"
      created_at         = "createdAt"
      rotation_id        = "keyId"
      rotation_id_prefix = "rekey-"
    }
    delete {
      method      = "PUT"
      path        = "/credentials/key-auth/{{ .KeyID }}/status"
      body        = "{\"status\": false}"
      gone_status = [404]
    }
    deactivate {
      path = "/credentials/key-auth/{{ .KeyID }}/status"
      body = "{\"status\": false}"
    }
    activate {
      path = "/credentials/key-auth/{{ .KeyID }}/status"
      body = "{\"status\": true}"
    }
  }

  sink "file" {
    path   = "/etc/orders/gateway-key.json"
    format = "json"
    owner  = "orders"
  }

  # The new key passes the gateway (401 or 403 would fail the probe).
  probe "http" {
    target        = "key"
    url           = "http://127.0.0.1:8080/api/orders/health"
    headers       = { Authorization = "apiKey {{ .Key.key_id }}:{{ .Key.key_secret }}" }
    expect_status = 200
  }

  reload "exec" {
    command = ["systemctl", "reload", "orders.service"]
  }

  probe "http" {
    url           = "http://127.0.0.1:7000/healthz"
    expect_status = 200
  }

  revoke {
    after = "10m"
    soak  = "1h"
  }
}
