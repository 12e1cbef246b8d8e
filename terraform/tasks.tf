# Cloud Tasks: one queue per entry of topology.QUEUES, with the dispatch budget and retries of locals.tf.

resource "google_cloud_tasks_queue" "queue" {
  for_each = local.queues

  name     = each.key
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  # After the last attempt Cloud Tasks drops the task; the handler marks its job failed when it
  # sees the final attempt, which is what the API shows (DESIGN.md §3).
  retry_config {
    max_attempts  = local.delivery.max_attempts
    min_backoff   = local.delivery.min_backoff
    max_backoff   = local.delivery.max_backoff
    max_doublings = local.delivery.max_doublings
  }

  stackdriver_logging_config {
    # Few tasks a day: log every dispatch, it is the trail of what the pipeline did.
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.api]
}
