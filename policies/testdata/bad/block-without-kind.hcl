policy "payments" {
  every = "30d"

  provider {
    name = "payments"
  }

  sink "test" "extra" { path = "/srv/payments.env" }
  probe "test" {}
}
