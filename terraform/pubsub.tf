# Pub/Sub: the pipeline's topics, their dead-letter topics, and the push subscriptions that feed pipeline functions.

locals {
  # One push subscription per provider and step: the topics are shared, the filter keeps each
  # provider's messages to its own function (DESIGN.md §3). Filled by the pipeline functions, e.g.
  #   binance-etl = { topic = "raw-ingested", provider = "binance", function = "binance_etl" }
  # The function must list "pubsub" in its invoked_by. Mirrors topology.SUBSCRIPTIONS (tested).
  subscriptions = {
    "raw-ingested-binance-etl"            = { topic = "raw-ingested", provider = "binance", function = "binance_etl" }
    "canonical-updated-binance-reconcile" = { topic = "canonical-updated", provider = "binance", function = "binance_reconcile" }
  }

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topics)

  name = each.key

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = toset(local.topics)

  name = "${each.key}-dead-letter"

  depends_on = [google_project_service.api]
}

# A topic without a subscription drops what it receives; this one keeps dead letters for a week
# so they can be inspected and replayed.
resource "google_pubsub_subscription" "dead_letter" {
  for_each = toset(local.topics)

  name                       = "${each.key}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  # Rarely read, so it must not expire after the default 31 idle days.
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions

  name   = each.key
  topic  = google_pubsub_topic.topic[each.value.topic].id
  filter = "attributes.provider = \"${each.value.provider}\""
  # A push is acknowledged by the function's reply, so give it the function's whole run time.
  ack_deadline_seconds = min(600, local.functions[each.value.function].timeout)

  push_config {
    push_endpoint = google_cloudfunctions2_function.function[each.value.function].url

    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = google_cloudfunctions2_function.function[each.value.function].url
    }
  }

  retry_policy {
    minimum_backoff = local.delivery.min_backoff
    maximum_backoff = local.delivery.max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.value.topic].id
    max_delivery_attempts = local.delivery.pubsub_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = contains(local.functions[each.value.function].invoked_by, "pubsub")
      error_message = "Subscription ${each.key}: function ${each.value.function} must list \"pubsub\" in invoked_by."
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic
# and acknowledge the original message on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = google_pubsub_topic.dead_letter

  topic  = each.value.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = google_pubsub_subscription.push

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
