policy "payments" {
  cron = "0 0 30 2 *"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
