policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}

  revoke {
    after = "1h"
  }

  revoke {
    soak = "1d"
  }
}
