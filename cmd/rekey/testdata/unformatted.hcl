policy "x" {
every="1h"
  rotate_blind=true
provider "random" {}
  sink "file" {
      path = "out/secret"
  }
}
