# The API key of an OpenAI project service account, through the OpenAI
# Admin API. The key's name carries the rotation id; list reads it back.
policy "orders-openai-key" {
  every = "30d"

  provider "http" {
    base_url = "https://api.openai.com"
    target   = "openai:proj_orders:svc_acct_orders"
    headers  = { Authorization = "Bearer {{ .Token }}" }

    # An admin key, from the daemon's environment (set it in a systemd
    # drop-in with EnvironmentFile=, readable only by root).
    auth {
      token_env = "OPENAI_ADMIN_KEY"
    }

    create {
      path       = "/v1/organization/projects/proj_orders/service_accounts/svc_acct_orders/api_keys"
      body       = "{\"name\": \"rekey-{{ .RotationID }}\"}"
      id         = "id"
      fields     = { api_key = "value" }
      created_at = "created_at"
    }
    list {
      path               = "/v1/organization/projects/proj_orders/api_keys?limit=100"
      items              = "data[?owner.service_account.id == 'svc_acct_orders']"
      id                 = "id"
      created_at         = "created_at"
      rotation_id        = "name"
      rotation_id_prefix = "rekey-"
      next               = "has_more && join('', ['?limit=100&after=', last_id])"
    }
    delete {
      path = "/v1/organization/projects/proj_orders/api_keys/{{ .KeyID }}"
    }
  }

  sink "file" {
    path   = "/etc/orders/openai.env"
    format = "env"
    owner  = "orders"
    fields = { OPENAI_API_KEY = "api_key" }
  }

  probe "http" {
    target        = "key"
    url           = "https://api.openai.com/v1/models"
    headers       = { Authorization = "Bearer {{ .Key.api_key }}" }
    expect_status = 200
  }

  reload "exec" {
    command = ["systemctl", "restart", "orders.service"]
  }

  probe "http" {
    url           = "https://orders.internal:8443/healthz"
    ca_file       = "/etc/ssl/internal/ca.pem"
    expect_status = 200
  }

  revoke {
    after = "1h"
  }
}
