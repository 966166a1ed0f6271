policy "payments" {
  every = "30d"

  provider "tset" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
