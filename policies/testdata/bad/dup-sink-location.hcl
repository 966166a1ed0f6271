policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/shared.env" }
  probe "test" {}
}

policy "billing" {
  every = "30d"

  provider "test" { name = "billing" }
  sink "test" { path = "/srv/shared.env" }
  probe "test" {}
}
