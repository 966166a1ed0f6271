# A session-signing secret for an internal web app. When a rotation needs
# attention, a local script mails the on-call address: it reads the
# notification as JSON on stdin (event, policy, rotation_id, step, result,
# error, ...), and REKEY_EVENT / REKEY_POLICY in its environment.
policy "intranet-session-secret" {
  every = "7d"

  provider "random" {
    bytes    = 48
    encoding = "base64url"
    field    = "session_secret"
  }

  sink "file" {
    path   = "/etc/intranet/session.json"
    format = "json"
    owner  = "intranet"
    mode   = "0600"
  }

  reload "exec" {
    command = ["systemctl", "reload", "intranet.service"]
  }

  probe "http" {
    target = "dependent"
    url    = "http://127.0.0.1:8094/healthz"
  }

  revoke {
    after = "1h"
    soak  = "0s"
  }

  notify "exec" {
    command = ["./notify-mail.sh", "platform-oncall@example.com"]
    env     = { MAIL_FROM = "rekey@example.com" }
    timeout = "30s"
  }
}
