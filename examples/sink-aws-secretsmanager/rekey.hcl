# Two Secrets Manager secrets fed from one IAM user's access key: one in
# the default JSON shape, one renamed for a tool that reads environment
# variable names, and one rendered as an AWS credentials file. Each is
# written with Secrets Manager's own rotation labels: AWSPENDING while the
# new key is tested, then AWSCURRENT (AWSPREVIOUS keeps the old key).
aws "prod" {
  region = "eu-central-1"
}

policy "reports-aws" {
  every = "30d"

  provider "aws_iam" {
    connection = aws.prod
    user       = "svc-reports"
  }

  # {"access_key_id": "...", "secret_access_key": "..."}
  sink "aws_secretsmanager" {
    connection = aws.prod
    secret_id  = "reports/aws"
  }

  # {"AWS_ACCESS_KEY_ID": "...", "AWS_SECRET_ACCESS_KEY": "..."}, in a
  # secret rekey creates, encrypted with a customer managed KMS key.
  sink "aws_secretsmanager" {
    connection        = aws.prod
    secret_id         = "reports/aws-env"
    create_if_missing = true
    kms_key_id        = "alias/reports"
    description       = "Access key of svc-reports, rotated by rekey"
    fields = {
      AWS_ACCESS_KEY_ID     = "access_key_id"
      AWS_SECRET_ACCESS_KEY = "secret_access_key"
    }
  }

  sink "aws_secretsmanager" {
    connection = aws.prod
    secret_id  = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:reports/credentials-file-AbCdEf"
    template   = <<-EOT
      [default]
      aws_access_key_id     = {{ .access_key_id }}
      aws_secret_access_key = {{ .secret_access_key }}
    EOT
  }

  probe "aws_sts" {
    connection = aws.prod
  }

  revoke {
    after = "2h"
    soak  = "24h"
  }
}
