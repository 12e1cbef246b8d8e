# Service accounts and IAM: one least-privilege identity per function, plus the callers that invoke them.

locals {
  # Roles granted on one resource instead of the project (kms.tf).
  resource_scoped_roles = ["roles/cloudkms.cryptoKeyEncrypterDecrypter"]

  function_project_roles = {
    for grant in flatten([
      for name, f in local.functions : [
        for role in concat(
          f.roles,
          # IAM database users also need to be allowed to sign in to the instance.
          var.db_iam_auth && contains(f.roles, "roles/cloudsql.client") ? ["roles/cloudsql.instanceUser"] : [],
        ) : { function = name, role = role } if !contains(local.resource_scoped_roles, role)
      ]
    ]) : "${grant.function} ${grant.role}" => grant
  }

  kms_functions = toset([
    for name, f in local.functions : name if contains(f.roles, "roles/cloudkms.cryptoKeyEncrypterDecrypter")
  ])

  # Functions that enqueue Cloud Tasks; each task carries an OIDC token of the tasks account.
  enqueuers = toset([
    for name, f in local.functions : name if contains(f.roles, "roles/cloudtasks.enqueuer")
  ])

  secret_grants = {
    for grant in flatten([
      for name, secrets in local.function_secrets : [
        for secret in secrets : { function = name, secret = secret }
      ]
    ]) : "${grant.function} ${grant.secret}" => grant
  }

  caller_members = {
    scheduler = "serviceAccount:${google_service_account.scheduler.email}"
    pubsub    = "serviceAccount:${google_service_account.pubsub_push.email}"
    tasks     = "serviceAccount:${google_service_account.tasks.email}"
  }

  # Who may call which function. The HTTP API is public at the network and IAM level on purpose:
  # browsers cannot present Google identity tokens, so each function checks the user's JWT itself
  # (health and openapi need no user at all).
  invokers = merge(
    {
      for name, f in local.functions : "${name} allUsers" => { function = name, member = "allUsers" }
      if f.kind == "http"
    },
    {
      for call in flatten([
        for name, f in local.functions : [for caller in f.invoked_by : { function = name, caller = caller }]
      ]) : "${call.function} ${call.caller}" => { function = call.function, member = local.caller_members[call.caller] }
    },
  )
}

resource "google_service_account" "function" {
  for_each = local.functions

  # account_id allows 6-30 lowercase letters, digits and '-'.
  account_id   = "fn-${replace(each.key, "_", "-")}"
  display_name = "Coinfrs function ${each.key}"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "function" {
  for_each = local.function_project_roles

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = local.invokers

  location = var.region
  # 2nd gen functions are invoked through their Cloud Run service, whose name may differ from the
  # function's (underscores become dashes).
  service = google_cloudfunctions2_function.function[each.value.function].service_config[0].service
  role    = "roles/run.invoker"
  member  = each.value.member
}

# The identity Cloud Tasks presents to task targets (TASKS_SERVICE_ACCOUNT_EMAIL).
resource "google_service_account" "tasks" {
  account_id   = "coinfrs-tasks"
  display_name = "Coinfrs Cloud Tasks caller"

  depends_on = [google_project_service.api]
}

# Creating a task that carries the tasks account's OIDC token requires acting as that account.
resource "google_service_account_iam_member" "enqueuer_acts_as_tasks" {
  for_each = local.enqueuers

  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_service_account" "scheduler" {
  account_id   = "coinfrs-scheduler"
  display_name = "Coinfrs Cloud Scheduler caller"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "pubsub_push" {
  account_id   = "coinfrs-pubsub-push"
  display_name = "Coinfrs Pub/Sub push caller"

  depends_on = [google_project_service.api]
}

# Pub/Sub signs push requests as pubsub_push; projects created before April 2021 need this grant.
resource "google_service_account_iam_member" "pubsub_signs_as_push" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Builds run as their own account instead of the Compute Engine default one, which new
# organisations leave without roles.
resource "google_service_account" "build" {
  account_id   = "coinfrs-build"
  display_name = "Coinfrs function builds"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectViewer", # the source zip, as copied by Cloud Functions
  ])

  project = var.project_id
  role    = each.key
  member  = "serviceAccount:${google_service_account.build.email}"
}
