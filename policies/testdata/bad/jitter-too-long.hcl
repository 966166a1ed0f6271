policy "payments" {
  every  = "1d"
  jitter = "2d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
