# An Anthropic API key. The Anthropic Admin API lists keys and sets their
# status (active, inactive, archived) but cannot create one, so the key
# comes from create_command: take-pooled-key.sh hands out the next key
# from a pool an operator filled from the Console. The http provider then
# lists, deactivates (for the soak), re-activates and archives keys.
policy "orders-anthropic-key" {
  every = "90d"

  provider "http" {
    base_url = "https://api.anthropic.com"
    target   = "anthropic:wrkspc_orders"
    headers = {
      x-api-key         = "{{ .Token }}"
      anthropic-version = "2023-06-01"
    }

    auth {
      token_file = "/etc/rekey/anthropic-admin-key"
    }

    create_command = ["./take-pooled-key.sh"]
    command_env    = { POOL_DIR = "/var/lib/rekey/anthropic-pool" }
    # Pool keys were made before the rotation and named in the Console:
    # take-pooled-key.sh logs which key went to which rotation id.
    orphans = "manual"

    list {
      path   = "/v1/organizations/api_keys?workspace_id=wrkspc_orders&limit=100"
      items  = "data[?status != 'archived']"
      id     = "id"
      status = "status"
      next   = "has_more && join('', ['?workspace_id=wrkspc_orders&limit=100&after_id=', last_id])"
    }
    deactivate {
      method = "POST"
      path   = "/v1/organizations/api_keys/{{ .KeyID }}"
      body   = "{\"status\": \"inactive\"}"
    }
    activate {
      method = "POST"
      path   = "/v1/organizations/api_keys/{{ .KeyID }}"
      body   = "{\"status\": \"active\"}"
    }
    # Archiving is the Admin API's closest to deletion.
    delete {
      method = "POST"
      path   = "/v1/organizations/api_keys/{{ .KeyID }}"
      body   = "{\"status\": \"archived\"}"
    }
  }

  sink "file" {
    path   = "/etc/orders/anthropic.env"
    format = "env"
    owner  = "orders"
    fields = { ANTHROPIC_API_KEY = "api_key" }
  }

  probe "http" {
    target = "key"
    url    = "https://api.anthropic.com/v1/models"
    headers = {
      x-api-key         = "{{ .Key.api_key }}"
      anthropic-version = "2023-06-01"
    }
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
    soak  = "24h"
  }
}
