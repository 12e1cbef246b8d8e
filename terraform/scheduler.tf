# Cloud Scheduler: the daily 00:30 UTC start of the pipeline (DESIGN.md §3).

locals {
  daily_job_target = "schedule_daily"
}

resource "google_cloud_scheduler_job" "daily" {
  # Activates when the pipeline's schedule_daily function lands in local.functions; until then
  # there is nothing to call.
  for_each = contains(keys(local.functions), local.daily_job_target) ? toset([local.daily_job_target]) : toset([])

  name             = "coinfrs-daily"
  description      = "Starts the daily ingest, ETL, reconciliation run."
  region           = var.region
  schedule         = "30 0 * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "180s"

  retry_config {
    retry_count          = local.delivery.max_attempts - 1
    min_backoff_duration = local.delivery.min_backoff
    max_backoff_duration = local.delivery.max_backoff
    max_doublings        = local.delivery.max_doublings
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function[each.key].url
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function[each.key].url
    }
  }

  depends_on = [google_cloud_run_service_iam_member.invoker]
}
