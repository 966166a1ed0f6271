state_dir = "state"

policy "payments" {
  every = "30x"

  provider "random" {
    lenght = 32
  }

  sink "file" {
    path   = "out/secret"
    format = "raw"
  }

  probe "exec" {
    command = ["true"]
  }
}
