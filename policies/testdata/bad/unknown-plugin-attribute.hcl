policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }

  sink "test" {
    pth = "/srv/payments.env"
  }

  probe "test" {}
}
