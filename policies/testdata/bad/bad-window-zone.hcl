policy "payments" {
  every  = "30d"
  window = "Mon-Fri 09:00-16:00 Europe/Berln"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
