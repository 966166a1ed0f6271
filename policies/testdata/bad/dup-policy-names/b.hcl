# A copy of a.hcl that someone forgot to rename.
policy "payments" {
  every = "30d"

  provider "test" { name = "payments-2" }
  sink "test" { path = "/srv/payments-2.env" }
  probe "test" {}
}
