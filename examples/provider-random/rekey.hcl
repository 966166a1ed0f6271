# A webhook signing secret shared by two services on this host: the sender
# signs with it, the receiver checks signatures. rekey generates it; the
# file sink is where it lives.
policy "webhook-signing-secret" {
  every = "90d"

  provider "random" {
    bytes    = 32
    encoding = "base64url"
    field    = "signing_secret"
  }

  sink "file" {
    path   = "/etc/webhooks/signing.json"
    format = "json"
    owner  = "webhooks"
    mode   = "0600"
  }

  reload "exec" {
    command = ["systemctl", "reload", "webhook-sender.service", "webhook-receiver.service"]
  }

  # The receiver must accept a request signed with the new secret.
  probe "exec" {
    target   = "key"
    command  = ["./send-signed-test-webhook.sh", "http://127.0.0.1:8090/hooks/test"]
    pass_key = true
  }

  probe "http" {
    target = "dependent"
    url    = "http://127.0.0.1:8090/healthz"
  }

  revoke {
    after = "10m"
    soak  = "0s"
  }
}
