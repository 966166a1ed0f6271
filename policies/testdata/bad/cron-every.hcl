policy "payments" {
  cron = "@every 720h"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
