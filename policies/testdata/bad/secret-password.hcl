testconn "main" {
  address  = "https://db.internal"
  password = "correct-horse-battery-staple"
}
