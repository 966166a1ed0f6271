policy "payments" {
  every = "30d"

  provider "test" { name = "payments" }
  sink "vault_kv" { path = "secret/payments" }
  probe "test" {}
}
