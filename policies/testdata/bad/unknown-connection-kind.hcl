tsetconn "main" {
  address = "https://vault.internal:8200"
}
