policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}

  reload "test" {
    command = ["systemctl", "reload", "payments"]
    env     = { PATH = "/usr/bin", PAYMENTS_API_KEY = "k-7d1e2f" }
  }
}
