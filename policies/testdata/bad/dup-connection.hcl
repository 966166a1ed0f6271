testconn "main" {
  address = "https://vault-a.internal:8200"
}

testconn "main" {
  address = "https://vault-b.internal:8200"
}
