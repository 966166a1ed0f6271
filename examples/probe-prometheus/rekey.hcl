# A gateway API key used by a fleet of payment workers. Besides a synthetic
# request, the prometheus probe watches the gateway's own request counters:
# if any worker did not pick up the new key, its calls are refused with 401
# or 403 and the refused share rises, although a single probe request
# passes.
policy "payments-gateway-key" {
  every = "30d"

  provider "exec" {
    create = ["./gateway-key.sh", "create"]
    delete = ["./gateway-key.sh", "delete"]
    list   = ["./gateway-key.sh", "list"]
  }

  sink "file" {
    path   = "/etc/payments/gateway.env"
    format = "env"
    fields = { GATEWAY_KEY = "api_key" }
  }

  reload "exec" {
    command = ["systemctl", "reload", "payments-workers.target"]
  }

  # The share of the payments consumer's requests the gateway refused over
  # the last 2 minutes. "or vector(0)" makes no refusal at all a 0; no
  # traffic at all stays "no data", which is inconclusive, never a pass.
  probe "prometheus" {
    address           = "https://prometheus.internal:9090"
    ca_file           = "/etc/ssl/internal/ca.pem"
    bearer_token_file = "/etc/rekey/prometheus.token"
    query             = "(sum(rate(kong_http_requests_total{consumer=\"{{ .Policy }}\",code=~\"401|403\"}[2m])) or vector(0)) / sum(rate(kong_http_requests_total{consumer=\"{{ .Policy }}\"}[2m]))"
    fail_if           = "result > 0.01"
    interval          = "15s"
    successes         = 4
    timeout           = "10m"
  }

  revoke {
    after = "1h"
  }
}
