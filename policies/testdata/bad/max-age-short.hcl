policy "payments" {
  every   = "30d"
  max_age = "20d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
