# A deploy token for the CI runners. The platform team's alert receiver is
# told about anything that needs a person (the default events would do the
# same; they are listed here to be explicit), and the team chat about every
# completed rotation. Notifications carry ids and masked key ids, never the
# token.
policy "ci-deploy-token" {
  every = "30d"

  provider "random" {
    bytes    = 32
    encoding = "base64url"
    field    = "token"
  }

  sink "file" {
    path   = "/etc/ci-runner/deploy-token"
    format = "raw"
    owner  = "ci-runner"
    mode   = "0600"
  }

  reload "exec" {
    command = ["systemctl", "reload", "ci-runner.service"]
  }

  probe "http" {
    target = "dependent"
    url    = "http://127.0.0.1:8093/healthz"
  }

  revoke {
    after = "10m"
    soak  = "0s"
  }

  # The receiver checks X-Rekey-Signature: sha256=HMAC-SHA256(key, body).
  # Create the key with: openssl rand -hex 32 > /etc/rekey/webhook-signing.key
  # (owned by rekey, mode 0600).
  notify "webhook" {
    url              = "https://alerts.example.com/hooks/rekey"
    on               = ["failure", "rolled_back", "stuck", "reactivated"]
    signing_key_file = "/etc/rekey/webhook-signing.key"
    headers          = { X-Team = "platform" }
    timeout          = "10s"
  }

  notify "webhook" {
    url              = "https://chatops.example.com/hooks/rekey"
    on               = ["success", "revoke_pending"]
    signing_key_file = "/etc/rekey/webhook-signing.key"
    ca_file          = "/etc/rekey/internal-ca.pem"
  }
}
