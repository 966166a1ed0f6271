policy "payments" {
  every  = "30d"
  window = "Mon-Thx 09:00-16:00 Europe/Berlin"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
