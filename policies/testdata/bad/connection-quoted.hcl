testconn "main" {
  address = "https://db.internal"
}

policy "quoted" {
  every = "30d"

  provider "test" {
    name       = "svc"
    connection = "testconn.main"
  }

  sink "test" {
    path = "/srv/quoted"
  }

  probe "test" {}
}

policy "typo" {
  every = "30d"

  provider "test" {
    name       = "svc2"
    connection = testconn.mian
  }

  sink "test" {
    path = "/srv/typo"
  }

  probe "test" {}
}
