policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }

  probe "test" {
    timeout  = "5s"
    interval = "10s"
  }
}
