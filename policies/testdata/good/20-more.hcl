policy "db.reports_ro" {
  cron = "@daily"

  provider "test" {
    name = file("fixtures/db-user.txt")
  }

  sink "test" {
    path = "reports.env"
  }

  probe "test" {
    target = "key"
  }

  notify "test" {
    url = "https://hooks.internal/rekey"
    on  = ["failure", "stuck", "success"]
  }

  notify "test" {
    url = "https://hooks.internal/all"
  }
}

policy "blind" {
  every        = "2w"
  rotate_blind = true

  provider "test" {
    name = upper("blind")
  }

  sink "test" {
    path = "blind.env"
  }
}
