policy "db" {
  every = "30d"

  provider "test" {
    name   = "app-role"
    single = true
  }
  sink "test" { path = "/srv/db.env" }
  probe "test" { target = "key" }
}

policy "db-proven" {
  every = "30d"

  provider "test" {
    name   = "other-role"
    single = true
  }
  sink "test" { path = "/srv/db-other.env" }
  probe "test" { target = "key" }
  reload "test" { command = ["systemctl", "reload", "app"] }
  probe "test" { target = "dependent" }
}
