testconn "main" {
  adress = "https://vault.internal:8200"
}
