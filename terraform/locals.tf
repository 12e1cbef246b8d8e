# The numbers and names Terraform shares with shared/messaging/topology.py (tests/unit/terraform keeps them equal).

locals {
  labels = {
    app         = "coinfrs"
    environment = var.environment
  }

  # topology.TOPICS; each also gets "<topic>-dead-letter" (topology.dead_letter_topic).
  topics = ["raw-ingested", "canonical-updated", "reconciliation-alerts"]

  # topology.QUEUES: each queue's dispatch budget, sized to its provider's rate limits.
  queues = {
    "default"              = { max_dispatches_per_second = 10, max_concurrent_dispatches = 10 }
    "etl"                  = { max_dispatches_per_second = 10, max_concurrent_dispatches = 5 }
    "reconciliation"       = { max_dispatches_per_second = 10, max_concurrent_dispatches = 5 }
    "ingestion-binance"    = { max_dispatches_per_second = 1, max_concurrent_dispatches = 2 }
    "ingestion-fireblocks" = { max_dispatches_per_second = 2, max_concurrent_dispatches = 4 }
  }

  # DESIGN.md §3 delivery policy: one attempt plus topology.MAX_RETRIES (3) retries, backing off
  # exponentially from MIN_BACKOFF_SECONDS to MAX_BACKOFF_SECONDS. Queues, push subscriptions
  # and the scheduler job all read it from here.
  delivery = {
    max_attempts  = 4
    min_backoff   = "10s"
    max_backoff   = "600s"
    max_doublings = 5
    # Pub/Sub refuses fewer than 5 delivery attempts before dead-lettering, so push
    # subscriptions allow one more than the queues; handlers are idempotent (DESIGN.md §3).
    pubsub_max_delivery_attempts = 5
  }
}
