policy "gateway" {
  every = "30d"

  provider "test" { name = "gateway-key" }
  sink "test" { path = "/srv/gateway.env" }
  probe "test" { target = "key" }

  revoke {
    after       = "1h"
    wait_unused = true
  }
}
