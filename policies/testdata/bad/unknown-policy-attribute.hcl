policy "payments" {
  every = "30d"
  jiter = "1h"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
