# The aws_sts probe signs sts:GetCallerIdentity with the new key: it passes
# when AWS accepts the key and, with expect_arn / expect_account, when the
# key belongs to the expected identity. It needs no IAM permission. Its
# connection, if any, gives only the region and endpoint (here a VPC
# endpoint for STS); it never lends the probe its credentials.
#
# Here the key is an IAM user's in a partner account, made by a script
# (through the exec provider) whose key fields are named like the
# environment variables; the probe is told those names.
aws "vpc" {
  region       = "eu-central-1"
  sts_endpoint = "https://vpce-0a1b2c3d4e5f67890-abcdefgh.sts.eu-central-1.vpce.amazonaws.com"
}

policy "partner-upload-aws" {
  every = "14d"

  provider "exec" {
    create = ["./partner-iam-key.sh", "create"]
    delete = ["./partner-iam-key.sh", "delete"]
    target = "partner-iam:uploader"
  }

  sink "file" {
    path   = "/etc/uploader/aws.env"
    format = "env"
    mode   = "0600"
  }

  probe "aws_sts" {
    connection              = aws.vpc
    access_key_id_field     = "AWS_ACCESS_KEY_ID"
    secret_access_key_field = "AWS_SECRET_ACCESS_KEY"
    expect_arn              = "arn:aws:iam::210987654321:user/uploader"
    expect_account          = "210987654321"
    timeout                 = "3m"
    interval                = "2s"
    successes               = 3
  }

  revoke {
    after = "30m"
    soak  = "0s"
  }
}
