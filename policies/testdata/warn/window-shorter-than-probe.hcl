policy "payments" {
  every  = "30d"
  window = "Sat 02:00-02:30 Europe/Berlin"

  provider "test" { name = "payments" }
  sink "test" { path = "/srv/payments.env" }

  probe "test" {
    timeout = "1h"
  }
}
