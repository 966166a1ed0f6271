# An HMAC secret shared by nginx (which validates signed URLs) and the
# app that signs them. nginx must reload to read the new secret.
policy "signed-url-secret" {
  every = "30d"

  provider "random" {
    bytes    = 32
    encoding = "hex"
    field    = "hmac_key"
  }

  sink "file" {
    path     = "/etc/nginx/secrets/signed-url.conf"
    format   = "template"
    template = "set $signed_url_secret \"{{ .Fields.hmac_key }}\";\n"
    mode     = "0600"
  }

  sink "file" {
    path   = "/etc/media-app/signing.json"
    format = "json"
    owner  = "media-app"
  }

  # Check the configuration first so a broken file never takes nginx down,
  # then reload gracefully.
  reload "exec" {
    command     = ["/bin/sh", "-c", "nginx -t -q && systemctl reload nginx.service"]
    run_timeout = "30s"
  }

  reload "exec" {
    command = ["systemctl", "reload", "media-app.service"]
  }

  # A URL signed with the new secret must be served.
  probe "exec" {
    target   = "dependent"
    command  = ["./fetch-signed-url.sh", "https://media.internal/probe.txt"]
    pass_key = true
  }

  revoke {
    after = "5m"
    soak  = "0s"
  }
}
