# Secret Manager: the secrets the functions mount. Terraform declares them; their values are added out of band.

locals {
  # Each secret is named like the environment variable it becomes, which is also the name
  # shared/config.py reads when SECRETS_BACKEND=secret_manager.
  secrets = ["SECRET_KEY", "GOOGLE_CLIENT_SECRET", "DB_PASS", "SENTRY_DSN", "SMTP_PASSWORD"]

  # DB_PASS is useless once functions sign in to PostgreSQL with IAM.
  unmounted_secrets = setunion(var.disabled_secrets, var.db_iam_auth ? ["DB_PASS"] : [])

  function_secrets = {
    for name, f in local.functions : name => setsubtract(f.secrets, local.unmounted_secrets)
  }
}

resource "google_secret_manager_secret" "secret" {
  for_each = toset(local.secrets)

  secret_id = each.key

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}
