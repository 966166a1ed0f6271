policy "payments" {
  every = "30d"

  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
