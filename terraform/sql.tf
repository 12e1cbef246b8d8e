# Cloud SQL for PostgreSQL: the instance, the `coinfrs` database and the users the functions sign in as.

locals {
  # Functions that talk to the database are the ones allowed to connect to it.
  database_functions = {
    for name, f in local.functions : name => f if contains(f.roles, "roles/cloudsql.client")
  }

  # With IAM database authentication each function signs in as its own service account, whose
  # PostgreSQL user name is the account's email without ".gserviceaccount.com".
  database_user = {
    for name, f in local.functions : name => (
      var.db_iam_auth
      ? trimsuffix(google_service_account.function[name].email, ".gserviceaccount.com")
      : google_sql_user.app.name
    )
  }
}

resource "google_sql_database_instance" "main" {
  name                = "coinfrs-${var.environment}"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = var.db_deletion_protection

  settings {
    # db-custom-* tiers exist only in the ENTERPRISE edition.
    edition                     = "ENTERPRISE"
    tier                        = var.db_tier
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection
    user_labels                 = local.labels

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      # Well clear of the 00:30 UTC pipeline run.
      start_time                     = "22:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
      }
    }

    ip_configuration {
      # Public IP carries no authorized networks: only the Cloud SQL connector (IAM-checked,
      # mutual TLS) gets through.
      ipv4_enabled    = var.db_private_network == null
      private_network = var.db_private_network
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    dynamic "database_flags" {
      for_each = var.db_iam_auth ? [1] : []
      content {
        name  = "cloudsql.iam_authentication"
        value = "on"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_sql_database" "coinfrs" {
  name     = "coinfrs"
  instance = google_sql_database_instance.main.name
}

# The built-in user that owns the schema (migrations run as it) and that the functions use unless
# db_iam_auth is on. Its password is set out of band (README.md) so it never enters the state;
# the DB_PASS secret holds the same value.
resource "google_sql_user" "app" {
  name     = "coinfrs"
  instance = google_sql_database_instance.main.name
  # PostgreSQL refuses to drop a role that owns tables; leave it to the instance's deletion.
  deletion_policy = "ABANDON"

  lifecycle {
    ignore_changes = [password]
  }
}

resource "google_sql_user" "function" {
  for_each = var.db_iam_auth ? local.database_functions : {}

  name            = local.database_user[each.key]
  instance        = google_sql_database_instance.main.name
  type            = "CLOUD_IAM_SERVICE_ACCOUNT"
  deletion_policy = "ABANDON"
}
