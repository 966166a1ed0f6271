polcy "payments" {
  every = "30d"
}
