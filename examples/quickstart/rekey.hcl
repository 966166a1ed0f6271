# The quickstart: rotates an API key every minute, end to end, on this
# machine alone. Run from the repository root:
#
#   go run ./cmd/rekey run -config examples/quickstart
#
# and in another terminal:
#
#   go run ./cmd/rekey status -config examples/quickstart
#
# keyservice.sh plays the system that issues keys (the provider), the file
# sink writes the key where the application reads it, and dependent.sh is
# the application. State (journal, key store, the application's key file)
# lives in examples/quickstart/state.

state_dir = "state/rekey"

log {
  level = "info"
}

policy "quickstart" {
  every = "1m"

  provider "exec" {
    create     = ["./keyservice.sh", "create"]
    list       = ["./keyservice.sh", "list"]
    delete     = ["./keyservice.sh", "delete"]
    deactivate = ["./keyservice.sh", "deactivate"]
    activate   = ["./keyservice.sh", "activate"]
    max_keys   = 2
    timeout    = "10s"
  }

  sink "file" {
    path   = "state/app/credentials.env"
    format = "env"
    fields = { API_KEY = "api_key" }
  }

  # The new key itself works at the key service.
  probe "exec" {
    target   = "key"
    command  = ["./probe-new-key.sh"]
    pass_key = true
    timeout  = "20s"
  }

  # Tell the application to pick the key up.
  reload "exec" {
    command = ["./dependent.sh", "reload"]
  }

  # The application works with the key it now reads.
  probe "exec" {
    target    = "dependent"
    command   = ["./dependent.sh", "check"]
    timeout   = "20s"
    successes = 2
    interval  = "1s"
  }

  revoke {
    after = "10s" # grace before the old key is touched
    soak  = "10s" # deactivated this long (the application keeps being probed) before deletion
  }
}
