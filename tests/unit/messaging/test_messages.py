"""Message contracts: encoding round trips, refusals, and parsing of push and task triggers."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent
from pydantic import ValidationError

from shared.errors import ValidationFailed
from shared.messaging.messages import (
    CanonicalUpdated,
    DailyRunRequested,
    IngestRequested,
    PnlRunRequested,
    RawIngested,
    ReconciliationAlertRaised,
    decode,
    encode,
    parse_push,
    parse_task,
)

SOURCE = uuid.uuid4()
JOB = uuid.uuid4()

EXAMPLES = [
    IngestRequested(
        job_id=JOB, data_source_id=SOURCE, provider="binance",
        start=date(2024, 1, 1), end=date(2024, 1, 31),
    ),
    IngestRequested(job_id=JOB, data_source_id=SOURCE, provider="fireblocks"),
    RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance"),
    CanonicalUpdated(job_id=JOB, data_source_id=SOURCE, provider="fireblocks"),
    ReconciliationAlertRaised(alert_id=uuid.uuid4(), data_source_id=SOURCE, provider="binance"),
    PnlRunRequested(run_id=uuid.uuid4()),
    DailyRunRequested(run_date=date(2024, 2, 29)),
]  # fmt: skip


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_encode_decode_round_trip(message):
    data = encode(message)

    assert isinstance(data, bytes)
    assert json.loads(data)["schema_version"] == 1
    assert decode(type(message), data) == message


def test_encoding_is_plain_json_of_ids():
    message = RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance")

    assert json.loads(encode(message)) == {
        "schema_version": 1,
        "job_id": str(JOB),
        "data_source_id": str(SOURCE),
        "provider": "binance",
    }


def test_messages_are_frozen():
    message = PnlRunRequested(run_id=uuid.uuid4())
    with pytest.raises(ValidationError):
        message.run_id = uuid.uuid4()


def test_unknown_field_is_refused():
    data = json.dumps({"run_id": str(uuid.uuid4()), "rows": [1, 2]}).encode()

    with pytest.raises(ValidationFailed) as refused:
        decode(PnlRunRequested, data)

    assert refused.value.details["problems"][0]["field"] == "rows"


def test_other_schema_version_is_refused():
    data = json.dumps({"schema_version": 2, "run_id": str(uuid.uuid4())}).encode()

    with pytest.raises(ValidationFailed) as refused:
        decode(PnlRunRequested, data)

    assert refused.value.details["problems"][0]["field"] == "schema_version"


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[1, 2]", b'{"run_id": "not-a-uuid"}', b"{}", b"\xff\xfe"],
    ids=["empty", "not-json", "array", "bad-uuid", "missing-field", "not-utf8"],
)
def test_malformed_bytes_are_refused(data):
    with pytest.raises(ValidationFailed, match="malformed PnlRunRequested"):
        decode(PnlRunRequested, data)


def test_unknown_provider_and_reversed_window_are_refused():
    with pytest.raises(ValidationError):
        RawIngested(job_id=JOB, data_source_id=SOURCE, provider="kraken")
    with pytest.raises(ValidationError):
        IngestRequested(
            job_id=JOB, data_source_id=SOURCE, provider="binance",
            start=date(2024, 2, 1), end=date(2024, 1, 1),
        )  # fmt: skip


def test_routing_fills_in_the_provider():
    ingest = IngestRequested(job_id=JOB, data_source_id=SOURCE, provider="fireblocks")

    assert ingest.route() == ("ingestion-fireblocks", "fireblocks_ingest")
    assert PnlRunRequested(run_id=JOB).route() == ("default", "pnl")
    assert RawIngested.TOPIC == "raw-ingested"
    assert RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance").attributes() == {
        "provider": "binance"
    }
    with pytest.raises(TypeError):
        RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance").route()


def _push_body(message, **extra):
    data = base64.b64encode(encode(message)).decode()
    return {
        "message": {
            "data": data,
            "attributes": {"provider": "binance"},
            "messageId": "42",
            "publishTime": "2024-01-01T00:00:00.000Z",
        },
        "subscription": "projects/p/subscriptions/raw-ingested-binance_etl",
        **extra,
    }


def test_parse_raw_push_body():
    message = RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance")

    parsed, delivery = parse_push(RawIngested, _push_body(message, deliveryAttempt=4))

    assert parsed == message
    assert delivery.id == "42"
    assert delivery.attempt == 4
    assert delivery.is_last_attempt
    assert delivery.source == "projects/p/subscriptions/raw-ingested-binance_etl"
    assert delivery.attributes == {"provider": "binance"}


def test_parse_cloud_event_as_functions_framework_builds_it():
    message = RawIngested(job_id=JOB, data_source_id=SOURCE, provider="binance")
    # What functions-framework makes of a raw push: the message only, under "message".
    body = _push_body(message)
    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub"},
        {"message": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
                     **body["message"]}},
    )  # fmt: skip

    parsed, delivery = parse_push(RawIngested, event)

    assert parsed == message
    assert (delivery.id, delivery.attempt, delivery.source) == ("42", None, "")
    assert not delivery.is_last_attempt


@pytest.mark.parametrize(
    "body",
    [{}, {"message": {}}, {"message": {"data": "***", "messageId": "1"}}, {"message": "x"}],
    ids=["empty", "no-data", "bad-base64", "not-an-object"],
)
def test_malformed_push_body_is_refused(body):
    with pytest.raises(ValidationFailed, match="Pub/Sub push"):
        parse_push(RawIngested, body)


def test_push_with_wrong_payload_is_refused():
    body = _push_body(PnlRunRequested(run_id=JOB))

    with pytest.raises(ValidationFailed, match="malformed RawIngested"):
        parse_push(RawIngested, body)


class _Request:
    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self._body, self.headers = body, headers

    def get_data(self) -> bytes:
        return self._body


def test_parse_cloud_task_request():
    message = IngestRequested(job_id=JOB, data_source_id=SOURCE, provider="binance")
    request = _Request(
        encode(message),
        {
            "X-CloudTasks-QueueName": "ingestion-binance",
            "x-cloudtasks-taskname": "ingest-1",  # header names are case-insensitive
            "X-CloudTasks-TaskRetryCount": "2",
            "X-CloudTasks-TaskExecutionCount": "2",
        },
    )

    parsed, delivery = parse_task(IngestRequested, request)

    assert parsed == message
    assert (delivery.id, delivery.attempt, delivery.source) == ("ingest-1", 3, "ingestion-binance")
    assert not delivery.is_last_attempt


def test_parse_cloud_task_last_attempt_and_bad_header():
    body = encode(PnlRunRequested(run_id=JOB))

    _, delivery = parse_task(PnlRunRequested, _Request(body, {"X-CloudTasks-TaskRetryCount": "3"}))
    assert delivery.is_last_attempt

    with pytest.raises(ValidationFailed):
        parse_task(PnlRunRequested, _Request(body, {"X-CloudTasks-TaskRetryCount": "x"}))


def test_contracts_and_interface_do_not_load_google_clients():
    # Cold start: every function imports these; only GcpBus may pull in google.* (lazily).
    code = (
        "import sys; before = set(sys.modules); import shared.messaging.messages, "
        "shared.messaging.bus, shared.messaging.gcp, shared.messaging.local; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('google', 'grpc'))))"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
