policy "payments" {
  every = "30d"

  provider "test" {
    name = "payments"
    tags = { bootstrap = "AKIAIOSFODNN7EXAMPLE" }
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
