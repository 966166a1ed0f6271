policy {
  every = "30d"
}
