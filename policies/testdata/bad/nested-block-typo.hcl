policy "payments" {
  every = "30d"

  provider "test" {
    name = "payments"
    optoin "region" {
      value = "eu-central-1"
    }
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
