guard {
  label = "env"
}

testconn "prod" {
  address = "https://db.prod.internal"
  labels  = { env = "prod" }
}

testconn "staging" {
  address = "https://db.staging.internal"
  labels  = { env = "staging" }
}

testconn "unlabelled" {
  address = "https://db.internal"
}

policy "payments" {
  every  = "30d"
  labels = { env = "prod", team = "payments" }

  provider "test" {
    name       = "svc-payments"
    connection = testconn.staging
  }

  sink "test" {
    path = "/srv/payments"
  }

  probe "test" {}
}

policy "billing" {
  every  = "30d"
  labels = { env = "prod" }

  provider "test" {
    name       = "svc-billing"
    connection = testconn.prod
  }

  sink "test" {
    path = "/srv/billing"
  }

  probe "test" {}
}

policy "reports" {
  every  = "30d"
  labels = { env = "prod" }

  provider "test" {
    name       = "svc-reports"
    connection = testconn.unlabelled
  }

  sink "test" {
    path = "/srv/reports"
  }

  probe "test" {}
}
