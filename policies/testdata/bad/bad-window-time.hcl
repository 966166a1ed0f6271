policy "payments" {
  every  = "30d"
  window = "Mon-Fri 09:00-25:00"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
