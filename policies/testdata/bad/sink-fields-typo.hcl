policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }

  sink "test" {
    path  = "/srv/payments.env"
    field = { KEY = "secret" }
  }

  probe "test" {}
}
