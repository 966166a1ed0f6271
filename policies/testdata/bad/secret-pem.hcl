policy "payments" {
  every = "30d"

  provider "test" {
    name = "payments"
    tags = {
      key = <<-PEM
        -----BEGIN RSA PRIVATE KEY-----
        MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu
        -----END RSA PRIVATE KEY-----
      PEM
    }
  }
  sink "test" { path = "/srv/payments.env" }
  probe "test" {}
}
