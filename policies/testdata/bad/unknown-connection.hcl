testconn "main" {
  address = "https://vault.internal:8200"
}

policy "payments" {
  every = "30d"

  provider "test" {
    name       = "payments"
    connection = testconn.mian
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
