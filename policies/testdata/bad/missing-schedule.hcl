policy "payments" {
  window = "Mon-Fri 09:00-17:00"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
