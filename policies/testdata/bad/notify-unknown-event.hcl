policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}

  notify "test" {
    url = "https://hooks.internal/rekey"
    on  = ["failed", "stuck"]
  }
}
