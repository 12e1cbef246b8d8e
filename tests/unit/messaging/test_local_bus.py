"""LocalBus delivers like Pub/Sub push and Cloud Tasks to real functions-framework targets."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from werkzeug.test import Client

from infra.local.emulators import ServedFunctions
from shared.messaging import topology
from shared.messaging.local import HttpTransport, LocalBus
from shared.messaging.messages import (
    CanonicalUpdated,
    IngestRequested,
    PnlRunRequested,
    RawIngested,
    encode,
)

BACKOFF = 0.02
SOURCE = uuid.uuid4()


def raw_ingested(provider: str = "binance") -> RawIngested:
    return RawIngested(job_id=uuid.uuid4(), data_source_id=SOURCE, provider=provider)


def ingest(provider: str = "binance") -> IngestRequested:
    return IngestRequested(job_id=uuid.uuid4(), data_source_id=SOURCE, provider=provider)


@pytest.fixture
def bus(targets: ServedFunctions, make_settings) -> Iterator[LocalBus]:
    bus = LocalBus(
        make_settings(functions_base_url=targets.base_url),
        subscriptions=(),
        backoff_seconds=BACKOFF,
    )
    yield bus
    bus.close()


def received(targets: ServedFunctions, mount: str) -> list:
    return targets.modules[mount].RECEIVED


def calls(targets: ServedFunctions, mount: str) -> list:
    return targets.modules[mount].CALLS


def test_publish_reaches_a_cloud_event_target_over_http(bus, targets):
    bus.subscribe(topology.RAW_INGESTED, "record_event")
    message = raw_ingested()

    message_id = bus.publish(topology.RAW_INGESTED, message, trace="t-1")
    bus.drain(5)

    [(got, delivery)] = received(targets, "record_event")
    assert got == message
    assert delivery.id == message_id
    assert delivery.attributes == {"provider": "binance", "trace": "t-1"}
    assert bus.dead_letters == []


def test_push_body_is_what_a_pubsub_push_subscription_sends(targets, make_settings):
    sent = []
    http = HttpTransport()

    def recording(url, body, headers):
        sent.append((url, json.loads(body), dict(headers)))
        return http(url, body, headers)

    bus = LocalBus(
        make_settings(functions_base_url=targets.base_url + "/"),
        recording,
        subscriptions=[topology.Subscription("raw-to-push", topology.RAW_INGESTED, "record_push")],
    )
    try:
        message = raw_ingested("fireblocks")
        message_id = bus.publish(topology.RAW_INGESTED, message)
        bus.drain(5)
    finally:
        bus.close()

    [(url, body, headers)] = sent
    assert url == f"{targets.base_url}/record_push/"
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"message", "subscription", "deliveryAttempt"}
    assert body["subscription"] == "projects/coinfrs-test/subscriptions/raw-to-push"
    assert body["deliveryAttempt"] == 1
    pushed = body["message"]
    assert base64.b64decode(pushed["data"]) == encode(message)
    assert pushed["attributes"] == {"provider": "fireblocks"}
    assert pushed["messageId"] == pushed["message_id"] == message_id
    assert pushed["publishTime"] == pushed["publish_time"]
    assert pushed["publishTime"].endswith("Z")
    datetime.fromisoformat(pushed["publishTime"])
    [(got, delivery)] = received(targets, "record_push")
    assert got == message
    assert (delivery.attempt, delivery.source) == (1, body["subscription"])


def test_provider_filter_is_honoured(bus, targets):
    bus.subscribe(topology.RAW_INGESTED, "binance_events", provider="binance")
    bus.subscribe(topology.RAW_INGESTED, "fireblocks_events", provider="fireblocks")
    bus.subscribe(topology.CANONICAL_UPDATED, "record_event")  # another topic: never delivered
    binance, fireblocks = raw_ingested("binance"), raw_ingested("fireblocks")

    bus.publish(topology.RAW_INGESTED, binance)
    bus.publish(topology.RAW_INGESTED, fireblocks)
    bus.drain(5)

    assert [m for m, _ in received(targets, "binance_events")] == [binance]
    assert [m for m, _ in received(targets, "fireblocks_events")] == [fireblocks]
    assert received(targets, "record_event") == []
    with pytest.raises(ValueError, match="contradict"):
        bus.publish(topology.RAW_INGESTED, binance, provider="fireblocks")


def test_target_failing_twice_is_delivered_on_the_second_retry(bus, targets):
    bus.subscribe(topology.RAW_INGESTED, "flaky_push")
    message = raw_ingested()

    bus.publish(topology.RAW_INGESTED, message)
    bus.drain(5)

    assert len(calls(targets, "flaky_push")) == 3
    [(got, delivery)] = received(targets, "flaky_push")
    assert got == message
    assert delivery.attempt == 3
    assert bus.dead_letters == []


def test_target_always_failing_is_dead_lettered_after_max_retries(bus, targets, caplog):
    bus.subscribe(topology.CANONICAL_UPDATED, "failing_event")
    caplog.set_level(logging.ERROR, logger="shared.messaging.local")

    updated = CanonicalUpdated(job_id=uuid.uuid4(), data_source_id=SOURCE, provider="binance")
    message_id = bus.publish(topology.CANONICAL_UPDATED, updated)
    bus.drain(5)

    assert len(calls(targets, "failing_event")) == 1 + topology.MAX_RETRIES
    [dead] = bus.dead_letters
    assert dead.destination == "canonical-updated-dead-letter"
    assert (dead.target, dead.id, dead.attempts) == ("failing_event", message_id, 4)
    assert dead.data == encode(updated)
    assert dead.attributes == {"provider": "binance"}
    assert dead.error == "HTTP 500"
    [record] = [r for r in caplog.records if r.getMessage() == "dead-lettered"]
    assert record.levelno == logging.ERROR
    assert record.topic == "canonical-updated-dead-letter"


def test_unreachable_target_is_retried_then_dead_lettered(make_settings):
    bus = LocalBus(
        make_settings(functions_base_url="http://127.0.0.1:9"),  # discard port: refused
        subscriptions=[topology.Subscription("s-raw", topology.RAW_INGESTED, "nowhere")],
        backoff_seconds=BACKOFF,
    )
    try:
        bus.publish(topology.RAW_INGESTED, raw_ingested())
        bus.drain(5)
    finally:
        bus.close()

    [dead] = bus.dead_letters
    assert dead.attempts == 1 + topology.MAX_RETRIES
    assert dead.error.startswith("ConnectError")


def test_task_reaches_an_http_target_with_cloud_tasks_headers(bus, targets):
    message = ingest()

    before = time.time()
    name = bus.enqueue("ingestion-binance", "record_task", message)
    bus.drain(5)

    [(got, delivery, headers)] = received(targets, "record_task")
    assert got == message
    assert (delivery.id, delivery.attempt, delivery.source) == (name, 1, "ingestion-binance")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Cloudtasks-Queuename"] == "ingestion-binance"
    assert headers["X-Cloudtasks-Taskname"] == name
    assert headers["X-Cloudtasks-Taskretrycount"] == "0"
    assert headers["X-Cloudtasks-Taskexecutioncount"] == "0"
    assert before <= float(headers["X-Cloudtasks-Tasketa"]) <= time.time()


def test_duplicate_task_name_is_delivered_once(bus, targets):
    first, second = ingest(), ingest()

    name = "source-1-2024-01-01"
    assert bus.enqueue("ingestion-binance", "record_task", first, task_name=name) == name
    assert bus.enqueue("ingestion-binance", "record_task", second, task_name=name) == name
    bus.enqueue("default", "record_task", second, task_name=name)  # names are per queue
    bus.drain(5)

    got = {d.source: m for m, d, _ in received(targets, "record_task")}
    assert len(received(targets, "record_task")) == 2
    assert got == {"ingestion-binance": first, "default": second}


def test_failing_task_is_retried_with_backoff_then_dropped(bus, targets, caplog):
    caplog.set_level(logging.ERROR, logger="shared.messaging.local")

    name = bus.enqueue("default", "failing_task", PnlRunRequested(run_id=uuid.uuid4()))
    bus.drain(5)

    headers = calls(targets, "failing_task")
    assert [h["X-Cloudtasks-Taskretrycount"] for h in headers] == ["0", "1", "2", "3"]
    assert [h["X-Cloudtasks-Taskexecutioncount"] for h in headers] == ["0", "1", "2", "3"]
    [dropped] = bus.dropped_tasks
    assert (dropped.destination, dropped.id, dropped.attempts) == ("default", name, 4)
    assert bus.dead_letters == []
    assert any(r.getMessage() == "task dropped after its last attempt" for r in caplog.records)


def test_retries_back_off_exponentially(targets, make_settings):
    times = []

    def failing(url, body, headers):
        times.append(time.monotonic())
        return 503

    bus = LocalBus(make_settings(), failing, subscriptions=(), backoff_seconds=0.05)
    try:
        bus.enqueue("default", "pnl", PnlRunRequested(run_id=uuid.uuid4()))
        bus.drain(5)
    finally:
        bus.close()

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == topology.MAX_RETRIES
    for retry, gap in enumerate(gaps):
        assert gap >= 0.05 * 2**retry * 0.9


def test_in_process_transport_and_delayed_task(targets, make_settings):
    # A transport is any (url, body, headers) -> status: here the WSGI app, no socket at all.
    app = Client(targets.app)
    delivered_at = []

    def in_process(url, body, headers):
        delivered_at.append(time.monotonic())
        path = url.removeprefix("http://functions")
        return app.post(path, data=body, headers=dict(headers)).status_code

    bus = LocalBus(make_settings(functions_base_url="http://functions"), in_process)
    try:
        started = time.monotonic()
        bus.enqueue("default", "record_task", ingest(), delay_seconds=1)
        time.sleep(0.5)
        assert delivered_at == []
        bus.drain(5)
    finally:
        bus.close()

    assert delivered_at[0] - started >= 0.95
    [(_, _, headers)] = received(targets, "record_task")
    assert float(headers["X-Cloudtasks-Tasketa"]) >= time.time() - 1


def test_unknown_names_are_refused(bus):
    message = raw_ingested()

    with pytest.raises(ValueError, match="unknown topic"):
        bus.publish("raw-ingestd", message)
    with pytest.raises(ValueError, match="belongs on 'raw-ingested'"):
        bus.publish(topology.CANONICAL_UPDATED, message)
    with pytest.raises(ValueError, match="unknown queue"):
        bus.enqueue("ingestion-kraken", "kraken_ingest", ingest())
    with pytest.raises(ValueError, match="not a function name"):
        bus.enqueue("default", "../admin", ingest())
    with pytest.raises(ValueError, match="task name"):
        bus.enqueue("default", "pnl", ingest(), task_name="has/slash")
    with pytest.raises(ValueError, match="unknown topic"):
        bus.subscribe("nope", "record_event")


def test_check_passes_and_drain_times_out_while_work_is_pending(bus, make_settings):
    bus.check()
    bus.subscribe(topology.RAW_INGESTED, "record_event")

    slow = LocalBus(make_settings(), lambda *_: time.sleep(0.5) or 200, subscriptions=())
    try:
        slow.enqueue("default", "pnl", PnlRunRequested(run_id=uuid.uuid4()))
        with pytest.raises(TimeoutError, match="1 message"):
            slow.drain(0.1)
        slow.drain(5)
    finally:
        slow.close()
