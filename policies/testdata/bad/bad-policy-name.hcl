policy "Payments AWS" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
