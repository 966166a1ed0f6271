policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  probe "test" {}
}
