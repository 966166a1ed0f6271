# A database password served to a Deployment through a Kubernetes Secret.
# rekey runs outside the cluster with a kubeconfig for its own service
# account, bound to the Role in the README (get and update on these two
# Secrets, create for the companion).
policy "orders-db-password" {
  every = "30d"

  provider "exec" {
    create = ["./orders-db.sh", "create"]
    delete = ["./orders-db.sh", "delete"]
    list   = ["./orders-db.sh", "list"]
  }

  sink "kubernetes_secret" {
    kubeconfig = "/etc/rekey/kubeconfig"
    namespace  = "orders"
    name       = "orders-db"
    data       = { DB_USER = "username", DB_PASS = "password" }
    labels     = { "app.kubernetes.io/part-of" = "orders" }
  }

  # The application's health endpoint reports database connectivity.
  probe "http" {
    url           = "https://orders.internal/healthz/db"
    ca_file       = "/etc/ssl/internal/ca.pem"
    expect_status = 200
    timeout       = "5m" # kubelet refreshes mounted Secrets within about a minute
    successes     = 3
    interval      = "10s"
  }

  revoke {
    after = "2h"
  }
}
