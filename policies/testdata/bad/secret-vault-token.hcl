policy "payments" {
  every = "30d"

  provider "test" {
    name   = "payments"
    secret = "hvs.CAESIJ2kVEwNtWZbq0n3ExampleTokenValue"
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
