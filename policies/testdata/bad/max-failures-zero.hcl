policy "payments" {
  every        = "30d"
  max_failures = 0

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
