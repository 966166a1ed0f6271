# An internal API token, checked with the team's own smoke test before any
# dependent is given it, and the dependent checked with its CLI afterwards.
policy "inventory-api-token" {
  every = "14d"

  provider "exec" {
    create = ["./inventory-token.sh", "create"]
    delete = ["./inventory-token.sh", "revoke"]
    list   = ["./inventory-token.sh", "list"]
  }

  sink "file" {
    path    = "/etc/inventory-sync/token"
    format  = "raw"
    newline = true
    owner   = "inventory-sync"
  }

  # The new token itself works: the script reads it from REKEY_KEY_TOKEN.
  probe "exec" {
    target      = "key"
    command     = ["./inventory-smoke-test.sh", "read-only=1"]
    pass_key    = true
    run_timeout = "20s"
    timeout     = "2m" # retries: new tokens take a moment to propagate
    successes   = 2
  }

  reload "exec" {
    command = ["systemctl", "reload", "inventory-sync.service"]
  }

  # The dependent works with it: its own status command, no key needed.
  probe "exec" {
    target  = "dependent"
    command = ["./inventory-sync-status.sh"]
    env     = { INVENTORY_SYNC_CONFIG = "/etc/inventory-sync/config.toml" }
  }

  revoke {
    after = "30m"
    soak  = "0s"
  }
}
