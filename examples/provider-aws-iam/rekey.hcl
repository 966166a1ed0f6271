# The access keys of one IAM user, kept fresh every 30 days. rekey creates
# the new key, puts it into Secrets Manager (where the service reads it),
# checks that AWS accepts it, and retires the old key only once IAM shows
# it idle: deactivated first, deleted a day later.
#
# rekey's own AWS credentials come from the standard chain (environment,
# profile, instance or container role), never from this file.
aws "prod" {
  region = "eu-central-1"
}

policy "payments-aws" {
  every  = "30d"
  window = "Mon-Thu 09:00-16:00 Europe/Berlin"

  provider "aws_iam" {
    connection = aws.prod
    user       = "svc-payments"
    # How late IAM may record a use of the old key (default "4h").
    usage_delay = "4h"
    # How long a deactivated key may keep working (IAM is eventually
    # consistent); the soak starts counting after it (default "1m").
    propagation_delay = "1m"
  }

  sink "aws_secretsmanager" {
    connection = aws.prod
    secret_id  = "payments/aws"
  }

  # New IAM keys take a few seconds to work everywhere: the probe is
  # retried until the timeout.
  probe "aws_sts" {
    connection = aws.prod
    expect_arn = "arn:aws:iam::123456789012:user/svc-payments"
    timeout    = "2m"
    successes  = 3
  }

  revoke {
    after       = "1h"
    wait_unused = true
    soak        = "24h"
  }
}
