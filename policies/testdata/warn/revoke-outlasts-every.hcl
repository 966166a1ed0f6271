policy "payments" {
  every = "1d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}

  revoke {
    after = "12h"
    soak  = "1d"
  }
}
