policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }

  probe "test" {
    url    = "http://127.0.0.1:8080/healthz"
    timout = "5m"
  }
}
