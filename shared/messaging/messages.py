"""Typed Pub/Sub and Cloud Tasks payloads (ids only), their JSON encoding, and trigger parsing."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import ValidationFailed
from shared.messaging import topology

M = TypeVar("M", bound="Message")


class Message(BaseModel):
    """Base of every message: frozen, strict about its fields, versioned, routed by class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Bump in a subclass (together with its field default) when its shape changes incompatibly;
    # a consumer then refuses the other version loudly instead of misreading it.
    SCHEMA_VERSION: ClassVar[int] = 1
    # Where the message travels; QUEUE and TARGET may name fields, e.g. "{provider}_ingest".
    TOPIC: ClassVar[str | None] = None
    QUEUE: ClassVar[str | None] = None
    TARGET: ClassVar[str | None] = None

    schema_version: int = Field(default=1, validate_default=True)

    @field_validator("schema_version", mode="after")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != cls.SCHEMA_VERSION:
            raise ValueError(f"{cls.__name__} is schema version {cls.SCHEMA_VERSION}, not {value}")
        return value

    def route(self) -> tuple[str, str]:
        """The (queue, target) a task carrying this message goes to."""
        if self.QUEUE is None or self.TARGET is None:
            raise TypeError(f"{type(self).__name__} is not sent as a Cloud Task")
        fields = self.model_dump()
        return self.QUEUE.format(**fields), self.TARGET.format(**fields)

    def attributes(self) -> dict[str, str]:
        """The Pub/Sub attributes subscriptions filter on."""
        return {}


class _ProviderMessage(Message):
    data_source_id: UUID
    provider: str

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in topology.PROVIDERS:
            raise ValueError(f"unknown provider {value!r}")
        return value

    def attributes(self) -> dict[str, str]:
        """Each provider's subscription filters on this attribute."""
        return {"provider": self.provider}


class IngestRequested(_ProviderMessage):
    """Ingest one data source (optionally a date window); one Cloud Task per data source."""

    QUEUE: ClassVar[str] = "ingestion-{provider}"
    TARGET: ClassVar[str] = "{provider}_ingest"

    job_id: UUID
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _ordered_window(self) -> IngestRequested:
        if self.start and self.end and self.start > self.end:
            raise ValueError("start is after end")
        return self


class RawIngested(_ProviderMessage):
    """Staging rows of a data source were written by an ingestion job."""

    TOPIC: ClassVar[str] = topology.RAW_INGESTED

    job_id: UUID


class CanonicalUpdated(_ProviderMessage):
    """Canonical transactions and snapshots of a data source were rebuilt by an ETL job."""

    TOPIC: ClassVar[str] = topology.CANONICAL_UPDATED

    job_id: UUID


class ReconciliationRequested(_ProviderMessage):
    """Reconcile one data source over a range of UTC days (the API's manual trigger)."""

    QUEUE: ClassVar[str] = "reconciliation"
    TARGET: ClassVar[str] = "{provider}_reconcile"

    job_id: UUID
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered_days(self) -> ReconciliationRequested:
        if self.start > self.end:
            raise ValueError("start is after end")
        return self


class ReconciliationAlertRaised(_ProviderMessage):
    """Reconciliation found a mismatch and stored an alert."""

    TOPIC: ClassVar[str] = topology.RECONCILIATION_ALERTS

    alert_id: UUID


class PnlRunRequested(Message):
    """Compute a stored PnL run."""

    QUEUE: ClassVar[str] = "default"
    TARGET: ClassVar[str] = "pnl"

    run_id: UUID


class DailyRunRequested(Message):
    """Cloud Scheduler's daily trigger of `schedule_daily`."""

    run_date: date


def encode(message: Message) -> bytes:
    """The JSON bytes a message travels as."""
    return message.model_dump_json().encode("utf-8")


def decode(model: type[M], data: bytes | str) -> M:
    """Parse JSON bytes into `model`, raising ValidationFailed that says what is wrong."""
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        # Locations and reasons only: the offending input is not echoed back into logs.
        problems = [
            {"field": ".".join(str(part) for part in item["loc"]), "problem": item["msg"]}
            for item in error.errors(include_input=False, include_url=False)
        ]
        raise ValidationFailed(
            f"malformed {model.__name__} message", {"problems": problems}
        ) from None


@dataclass(frozen=True)
class Delivery:
    """How a message reached its function: the id, which attempt, and from where."""

    id: str
    attempt: int | None  # 1 on first delivery; None when the sender does not say
    source: str  # the subscription or queue, as the sender names it ("" when absent)
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_last_attempt(self) -> bool:
        """Whether no retry follows if this attempt fails (topology.MAX_RETRIES)."""
        return self.attempt is not None and self.attempt > topology.MAX_RETRIES


class _CloudEvent(Protocol):
    data: Any


class _Request(Protocol):
    headers: Any

    def get_data(self) -> bytes: ...


def parse_push(model: type[M], envelope: _CloudEvent | Mapping[str, Any]) -> tuple[M, Delivery]:
    """Read a Pub/Sub push: a functions-framework CloudEvent or the raw push body as a dict.

    functions-framework's conversion of a raw push body into a CloudEvent keeps only the
    message, so `subscription` and `deliveryAttempt` are known only from the raw body.
    """
    body = envelope if isinstance(envelope, Mapping) else envelope.data
    try:
        message = body["message"]
        data = base64.b64decode(message["data"], validate=True)
        message_id = str(message.get("messageId") or message["message_id"])
        attributes = dict(message.get("attributes") or {})
    except (KeyError, TypeError, binascii.Error) as error:
        raise ValidationFailed(
            "malformed Pub/Sub push body", {"problem": f"{type(error).__name__}: {error}"}
        ) from None
    attempt = body.get("deliveryAttempt")
    delivery = Delivery(
        id=message_id,
        attempt=int(attempt) if attempt is not None else None,
        source=str(body.get("subscription", "")),
        attributes=attributes,
    )
    return decode(model, data), delivery


def parse_task(model: type[M], request: _Request) -> tuple[M, Delivery]:
    """Read a Cloud Tasks HTTP request (JSON body and X-CloudTasks-* headers)."""
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        retries = int(headers.get("x-cloudtasks-taskretrycount", "0"))
    except ValueError:
        raise ValidationFailed("malformed X-CloudTasks-TaskRetryCount header") from None
    delivery = Delivery(
        id=headers.get("x-cloudtasks-taskname", ""),
        attempt=retries + 1,
        source=headers.get("x-cloudtasks-queuename", ""),
    )
    return decode(model, request.get_data()), delivery
