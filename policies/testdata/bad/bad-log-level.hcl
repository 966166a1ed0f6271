log {
  level  = "warning"
  format = "text"
}
