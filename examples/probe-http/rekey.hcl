# A partner API key: the probe calls the partner's "whoami" endpoint with
# the new key before any dependent gets it, then checks the dependent's
# health endpoint after the reload.
policy "partner-api-key" {
  every = "60d"

  provider "exec" {
    create = ["./partner-api-key.sh", "create"]
    delete = ["./partner-api-key.sh", "delete"]
    list   = ["./partner-api-key.sh", "list"]
  }

  sink "file" {
    path   = "/etc/orders/partner.json"
    format = "json"
    owner  = "orders"
  }

  # The new key itself works.
  probe "http" {
    target = "key"
    url    = "https://api.partner.example/v2/whoami"
    headers = {
      Authorization = "Bearer {{ .Key.api_key }}"
      Accept        = "application/json"
    }
    expect_status     = 200
    expect_body_regex = "\"account\":\\s*\"acme-orders\""
    request_timeout   = "5s"
    timeout           = "3m" # keys take up to a minute to become valid
    successes         = 3
  }

  reload "exec" {
    command = ["systemctl", "reload", "orders.service"]
  }

  # The dependent works with it (internal CA).
  probe "http" {
    target        = "dependent"
    url           = "https://orders.internal:8443/healthz/partner"
    ca_file       = "/etc/ssl/internal/ca.pem"
    expect_status = [200, 204]
    expect_body   = "partner: ok"
  }

  revoke {
    after = "2h"
    soak  = "0s"
  }
}
