# The aws_sts probe signs sts:GetCallerIdentity with the new key: it passes
# when AWS accepts the key and, with expect_arn / expect_account, when the
# key belongs to the expected user. It needs no IAM permission. Its
# connection, if any, gives only the region and endpoint (here a VPC
# endpoint for STS); it never lends the probe its credentials.
aws "prod" {
  region       = "eu-central-1"
  sts_endpoint = "https://vpce-0a1b2c3d4e5f67890-abcdefgh.sts.eu-central-1.vpce.amazonaws.com"

  assume_role {
    role_arn     = "arn:aws:iam::123456789012:role/rekey"
    session_name = "rekey-payments"
  }
}

policy "ci-deployer-aws" {
  every = "14d"

  provider "aws_iam" {
    connection = aws.prod
    user       = "ci-deployer"
  }

  sink "aws_secretsmanager" {
    connection = aws.prod
    secret_id  = "ci/deployer"
    fields = {
      AWS_ACCESS_KEY_ID     = "access_key_id"
      AWS_SECRET_ACCESS_KEY = "secret_access_key"
    }
  }

  # The sink renamed the fields; the probe is told the names it receives.
  probe "aws_sts" {
    connection              = aws.prod
    access_key_id_field     = "AWS_ACCESS_KEY_ID"
    secret_access_key_field = "AWS_SECRET_ACCESS_KEY"
    expect_arn              = "arn:aws:iam::123456789012:user/ci-deployer"
    expect_account          = "123456789012"
    timeout                 = "3m"
    interval                = "2s"
    successes               = 2
  }

  revoke {
    after = "30m"
    soak  = "0s"
  }
}
