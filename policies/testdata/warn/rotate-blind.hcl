policy "payments" {
  every        = "30d"
  rotate_blind = true

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }
}
