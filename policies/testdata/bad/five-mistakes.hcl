# Five independent mistakes: one run of validate reports all five.
policy "Payments AWS" {
  every   = "30d"
  max_age = "7d"
  window  = "Mon-Thu 25:00-26:00"

  provider "test" {
    name = "svc-payments"
  }

  sink "tset" {
    path = "/srv/payments"
  }

  probe "test" {
    timout = "1m"
  }
}
