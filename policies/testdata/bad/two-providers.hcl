policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  provider "test" { name = "payments-2" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
