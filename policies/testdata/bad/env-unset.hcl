policy "payments" {
  every = "30d"

  provider "test" {
    name   = "payments"
    secret = env("REKEY_TEST_UNSET")
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
