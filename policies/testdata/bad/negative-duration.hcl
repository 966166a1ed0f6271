policy "payments" {
  every  = "30d"
  jitter = "-1h"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}

  revoke {
    soak = "-2h"
  }
}
