policy "payments" {
  every = "30d"

  provider "test" {
    name = file("missing-user-name.txt")
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
