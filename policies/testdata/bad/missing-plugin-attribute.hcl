policy "payments" {
  every = "30d"

  provider "test" {}
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
