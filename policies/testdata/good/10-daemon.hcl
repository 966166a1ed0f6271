# Daemon settings and connections.
state_dir = "state"

log {
  level  = "debug"
  format = "json"
}

server {
  listen = "127.0.0.1:9999"
}

testconn "main" {
  address    = "https://vault.internal:8200"
  token_file = "token"
}

policy "payments-aws" {
  every        = "30d"
  window       = "Mon-Thu 09:00-16:00 Europe/Berlin"
  jitter       = "1h"
  max_age      = "45d"
  step_timeout = "5m"
  max_failures = 3

  provider "test" {
    name       = "svc-payments"
    connection = testconn.main
    secret     = env("REKEY_TEST_SECRET")
    deactivate = true
  }

  sink "test" {
    path   = "out/payments.env"
    fields = { AWS_ACCESS_KEY_ID = "access_key_id", AWS_SECRET_ACCESS_KEY = "secret_access_key" }
  }

  sink "test" {
    path = "/srv/payments/key.json"
  }

  probe "test_key" {
    url = "https://sts.example"
  }

  reload "test" {
    command = ["systemctl", "reload", "payments"]
    timeout = "30s"
  }

  probe "test" {
    url       = "https://payments.internal/healthz"
    timeout   = "5m"
    interval  = "2s"
    successes = 3
  }

  revoke {
    after       = "2h"
    wait_unused = true
    soak        = "1d"
  }
}
