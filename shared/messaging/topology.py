"""Every Pub/Sub topic and Cloud Tasks queue name the code uses (Terraform declares each)."""

from __future__ import annotations

from dataclasses import dataclass

RAW_INGESTED = "raw-ingested"
CANONICAL_UPDATED = "canonical-updated"
RECONCILIATION_ALERTS = "reconciliation-alerts"

TOPICS: tuple[str, ...] = (RAW_INGESTED, CANONICAL_UPDATED, RECONCILIATION_ALERTS)

# Delivery policy of DESIGN.md §3: one attempt plus at most three retries, exponential backoff.
MAX_RETRIES = 3
MIN_BACKOFF_SECONDS = 10
MAX_BACKOFF_SECONDS = 600


def dead_letter_topic(topic: str) -> str:
    """The topic where messages of `topic` land once retries are exhausted."""
    return f"{topic}-dead-letter"


@dataclass(frozen=True)
class Queue:
    """A Cloud Tasks queue and the dispatch budget Terraform gives it."""

    name: str
    max_dispatches_per_second: float
    max_concurrent_dispatches: int


QUEUES: tuple[Queue, ...] = (
    Queue("default", max_dispatches_per_second=10, max_concurrent_dispatches=10),
    Queue("etl", max_dispatches_per_second=10, max_concurrent_dispatches=5),
    Queue("reconciliation", max_dispatches_per_second=10, max_concurrent_dispatches=5),
    # One queue per provider, sized so a whole fan-out stays inside the provider's request budget:
    # Binance allows 6,000 request weight a minute per IP; Fireblocks rate-limits per API key.
    Queue("ingestion-binance", max_dispatches_per_second=1, max_concurrent_dispatches=2),
    Queue("ingestion-fireblocks", max_dispatches_per_second=2, max_concurrent_dispatches=4),
)

PROVIDERS: tuple[str, ...] = ("binance", "fireblocks")


def ingestion_queue(provider: str) -> str:
    """The ingestion queue of one provider."""
    return f"ingestion-{provider}"


@dataclass(frozen=True)
class Subscription:
    """A push subscription: messages of `topic` (optionally one provider's) POSTed to `target`."""

    name: str
    topic: str
    target: str
    provider: str | None = None

    @property
    def filter(self) -> str:
        """The Pub/Sub filter expression Terraform sets ("" = every message of the topic)."""
        return f'attributes.provider = "{self.provider}"' if self.provider else ""

    def matches(self, attributes: dict[str, str]) -> bool:
        """Whether a message with these attributes passes the filter."""
        return self.provider is None or attributes.get("provider") == self.provider


# One push subscription per provider step; Terraform declares exactly these.
SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("raw-ingested-binance-etl", RAW_INGESTED, "binance_etl", provider="binance"),
    Subscription(
        "canonical-updated-binance-reconcile",
        CANONICAL_UPDATED,
        "binance_reconcile",
        provider="binance",
    ),
)
