policy "payments" {
  every  = "30d"
  labels = { env = "prod/eu" }

  provider "test" {
    name = "svc-payments"
  }

  sink "test" {
    path = "/srv/payments"
  }

  probe "test" {}
}
