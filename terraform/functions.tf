# The Cloud Functions (2nd gen): one `functions` entry per target main.py exports, built from this repository.

locals {
  # Adding a target to main.py = adding one entry here (tests/unit/terraform checks both ways).
  #   entry_point  the name main.py exports; the function is deployed under the map key, so its URL
  #                is FUNCTIONS_BASE_URL/<key>.
  #   kind         "http": the public API; anyone may call it and the function authenticates users.
  #                "event": private; only the callers named in invoked_by may call it.
  #   invoked_by   for event functions: any of "scheduler", "pubsub", "tasks".
  #   roles        project roles of the function's own service account (iam.tf); the KMS role is
  #                granted on the credentials key only, cloudtasks.enqueuer also lets the function
  #                sign tasks as the tasks service account.
  #   secrets      Secret Manager secrets (secrets.tf) mounted as environment variables.
  functions = {
    # Sign-in: email OTP over SMTP, Google's OAuth code flow; mints sessions.
    auth = {
      entry_point   = "auth"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN", "GOOGLE_CLIENT_SECRET", "SMTP_PASSWORD"]
    }
    users = {
      entry_point   = "users"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    portfolios = {
      entry_point   = "portfolios"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    entities = {
      entry_point   = "entities"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    # Onboarding: calls the providers (read-only) and seals credentials under the KMS key.
    datasources = {
      entry_point   = "datasources"
      kind          = "http"
      invoked_by    = []
      memory        = "512M"
      timeout       = 60
      max_instances = 10
      # ... and queues syncs (POST /datasources/{id}/sync) on the provider's ingestion queue.
      roles = [
        "roles/cloudsql.client",
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "roles/cloudtasks.enqueuer",
      ]
      secrets = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    jobs = {
      entry_point   = "jobs"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    transactions = {
      entry_point   = "transactions"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    positions = {
      entry_point   = "positions"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    # The pipeline: a Cloud Task per sync runs the ingestion (long: a backfill walks every
    # window); its raw-ingested message runs the ETL. Both decrypt credentials or publish.
    binance_ingest = {
      entry_point   = "binance_ingest"
      kind          = "event"
      invoked_by    = ["tasks"]
      memory        = "1Gi"
      timeout       = 1800
      max_instances = 5
      roles = [
        "roles/cloudsql.client",
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "roles/pubsub.publisher",
      ]
      secrets = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    # Cloud Scheduler's daily start: one sync job and one ingestion task per active data source.
    schedule_daily = {
      entry_point   = "schedule_daily"
      kind          = "event"
      invoked_by    = ["scheduler"]
      memory        = "256M"
      timeout       = 120
      max_instances = 1
      roles         = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    # The daily check: a canonical-updated push after every sync, or the API's trigger (a
    # Cloud Task); it publishes reconciliation-alerts and mails the owner.
    binance_reconcile = {
      entry_point   = "binance_reconcile"
      kind          = "event"
      invoked_by    = ["tasks", "pubsub"]
      memory        = "512M"
      timeout       = 540
      max_instances = 5
      roles         = ["roles/cloudsql.client", "roles/pubsub.publisher"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN", "SMTP_PASSWORD"]
    }
    reconciliation = {
      entry_point   = "reconciliation"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 10
      roles         = ["roles/cloudsql.client", "roles/cloudtasks.enqueuer"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    binance_etl = {
      entry_point   = "binance_etl"
      kind          = "event"
      invoked_by    = ["pubsub"]
      memory        = "1Gi"
      timeout       = 540
      max_instances = 5
      roles         = ["roles/cloudsql.client", "roles/pubsub.publisher"]
      secrets       = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    health = {
      entry_point   = "health"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 5
      # /health/queue reads each topic and queue to prove the bus is reachable.
      roles   = ["roles/cloudsql.client", "roles/pubsub.viewer", "roles/cloudtasks.viewer"]
      secrets = ["SECRET_KEY", "DB_PASS", "SENTRY_DSN"]
    }
    openapi = {
      entry_point   = "openapi"
      kind          = "http"
      invoked_by    = []
      memory        = "256M"
      timeout       = 30
      max_instances = 5
      roles         = []
      # Settings validates SECRET_KEY at import in every target, even one that signs nothing.
      secrets = ["SECRET_KEY"]
    }
  }

  # The HTTP API's route groups: path segment after /api/v1 -> the function (key above) that serves
  # /api/v1/<segment> and everything under it; the load balancer (loadbalancer.tf) routes by it.
  # Mirrors ROUTE_GROUPS of functions/api/__init__.py, which names the function's entry point
  # (tests/unit/terraform keeps them equal). A new HTTP function adds its segments here.
  api_route_groups = {
    "auth"           = "auth"
    "users"          = "users"
    "portfolios"     = "portfolios"
    "entities"       = "entities"
    "datasources"    = "datasources"
    "jobs"           = "jobs"
    "transactions"   = "transactions"
    "positions"      = "positions"
    "reconciliation" = "reconciliation"
    "health"         = "health"
    "openapi.json"   = "openapi"
  }

  # Cloud Functions answers every function at <base>/<name>; set here rather than read from the
  # functions so every function can be given it without a dependency cycle.
  functions_base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net"

  # Empty settings are left out so shared/config.py applies its own defaults.
  optional_env = {
    for name, value in {
      CORS_ORIGINS        = join(",", var.cors_origins)
      GOOGLE_CLIENT_ID    = var.google_client_id
      OAUTH_REDIRECT_URIS = join(",", var.oauth_redirect_uris)
      SMTP_HOST           = var.smtp_host
      SMTP_FROM           = var.smtp_from
      SMTP_USERNAME       = var.smtp_username
    } : name => value if value != ""
  }

  function_env = merge(local.optional_env, {
    ENVIRONMENT                 = "production"
    BUS                         = "gcp"
    LOG_LEVEL                   = var.log_level
    GCP_PROJECT                 = var.project_id
    GCP_LOCATION                = var.region
    INSTANCE_CONNECTION_NAME    = google_sql_database_instance.main.connection_name
    DB_NAME                     = google_sql_database.coinfrs.name
    DB_IAM_AUTH                 = tostring(var.db_iam_auth)
    DB_PRIVATE_IP               = tostring(var.db_private_network != null)
    KMS_KEY_NAME                = google_kms_crypto_key.credentials.id
    FUNCTIONS_BASE_URL          = local.functions_base_url
    TASKS_SERVICE_ACCOUNT_EMAIL = google_service_account.tasks.email
    SMTP_PORT                   = tostring(var.smtp_port)
    SMTP_STARTTLS               = tostring(var.smtp_starttls)
    # X-Forwarded-For entries our own front ends append: Google's front end in front of every
    # function, plus the load balancer when the API has its own host (loadbalancer.tf). The
    # client's address is the one they appended; anything left of it is the client's claim.
    TRUSTED_PROXY_HOPS = var.api_domain == null ? "1" : "2"
    # The platform sets it on every 2nd gen function; declaring it keeps plans free of a diff.
    LOG_EXECUTION_ID = "true"
  })
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-coinfrs-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds only build inputs, which the zip in this repository can always recreate.
  force_destroy = true

  depends_on = [google_project_service.api]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/source.zip"
  # Fixed modes keep the md5 (and so the object name) identical from one machine to another.
  output_file_mode = "0644"
  excludes = [
    ".venv*",
    ".git",
    ".ci",
    ".env",
    ".local",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    "tests",
    "terraform",
    "infra",
    "**/__pycache__",
    "**/*.pyc",
  ]
}

resource "google_storage_bucket_object" "source" {
  # Named by content so that a code change, and only a code change, redeploys the functions.
  name   = "source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name     = each.key
  location = var.region

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory               = each.value.memory
    timeout_seconds                = each.value.timeout
    max_instance_count             = each.value.max_instances
    min_instance_count             = 0
    service_account_email          = google_service_account.function[each.key].email
    all_traffic_on_latest_revision = true
    # Scheduler, Pub/Sub push and Cloud Tasks of this project count as internal traffic, so event
    # functions can refuse the internet outright; IAM still checks every caller. HTTP functions
    # take var.api_ingress: ALLOW_INTERNAL_AND_GCLB once the load balancer serves the API.
    ingress_settings              = each.value.kind == "http" ? var.api_ingress : "ALLOW_INTERNAL_ONLY"
    vpc_connector                 = var.vpc_connector
    vpc_connector_egress_settings = var.vpc_connector == null ? null : "PRIVATE_RANGES_ONLY"

    environment_variables = merge(local.function_env, {
      DB_USER = local.database_user[each.key]
    })

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets[each.key]
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(["http", "event"], each.value.kind)
      error_message = "Function ${each.key}: kind must be \"http\" or \"event\"."
    }
    precondition {
      condition     = alltrue([for caller in each.value.invoked_by : contains(["scheduler", "pubsub", "tasks"], caller)])
      error_message = "Function ${each.key}: invoked_by may only name scheduler, pubsub and tasks."
    }
    precondition {
      condition     = var.db_private_network == null || var.vpc_connector != null
      error_message = "A private-IP database needs vpc_connector so the functions can reach it."
    }
    precondition {
      condition     = var.api_ingress == "ALLOW_ALL" || var.api_domain != null
      error_message = "api_ingress = \"${var.api_ingress}\" admits only the load balancer, which needs api_domain."
    }
  }

  # The deploy checks that the runtime service account can read every mounted secret.
  depends_on = [
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.build,
  ]
}
