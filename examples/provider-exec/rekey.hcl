# A key for a legacy reporting API that rekey has no built-in provider for.
# A small script wraps the vendor's admin CLI and speaks the exec
# provider's JSON contract (README, "Provider `exec`").
policy "legacy-reports-api" {
  every = "30d"

  provider "exec" {
    create     = ["./legacy-api-key.sh", "create"]
    delete     = ["./legacy-api-key.sh", "delete"]
    list       = ["./legacy-api-key.sh", "list"]
    deactivate = ["./legacy-api-key.sh", "disable"]
    activate   = ["./legacy-api-key.sh", "enable"]
    last_used  = ["./legacy-api-key.sh", "last-used"]

    max_keys    = 2     # the API allows two keys per service account
    usage_delay = "15m" # its "last used" figure lags by up to 15 minutes
    timeout     = "2m"
    target      = "legacy-api:svc-reports"

    env = {
      LEGACY_API_URL     = "https://legacy.internal/admin"
      LEGACY_API_ACCOUNT = "svc-reports"
      # The admin credential is read by the script from this file;
      # never put secrets in env.
      LEGACY_ADMIN_CREDENTIALS_FILE = "/etc/rekey/legacy-admin.json"
    }
  }

  sink "file" {
    path   = "/etc/reports/legacy-api.env"
    format = "env"
    fields = { LEGACY_API_KEY = "token" }
    owner  = "reports"
    mode   = "0600"
  }

  reload "exec" {
    command = ["systemctl", "restart", "reports.service"]
  }

  probe "http" {
    target        = "dependent"
    url           = "http://127.0.0.1:8085/healthz/legacy-api"
    expect_status = 200
    timeout       = "5m"
  }

  revoke {
    after       = "1h"
    wait_unused = true
    soak        = "24h"
  }
}
