policy "payments" {
  every = "30d"

  provider "test" { name = "svc-payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}

policy "payments-again" {
  every = "7d"

  provider "test" { name = "svc-payments" }
  sink "test" { path = "/srv/payments-again.env" }
  probe "test" {}
}
