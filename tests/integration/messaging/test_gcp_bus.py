"""GcpBus against the official Pub/Sub emulator and gcloud-tasks-emulator, into real targets."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from infra.local.emulators import (
    EmulatorUnavailable,
    ServedFunctions,
    create_pubsub_topology,
    create_queues,
    free_port,
    pubsub_emulator,
    serve_functions,
    tasks_emulator,
)
from shared.config import Settings, load_settings
from shared.errors import DependencyUnavailable
from shared.messaging import topology
from shared.messaging.gcp import GcpBus
from shared.messaging.messages import IngestRequested, RawIngested

pytestmark = pytest.mark.emulator

TARGETS = Path(__file__).resolve().parents[2] / "unit" / "messaging" / "targets.py"
PROJECT, LOCATION = "coinfrs-test", "europe-west1"
SUBSCRIPTIONS = [
    topology.Subscription("raw-ingested-record_event", topology.RAW_INGESTED, "record_event"),
    topology.Subscription("raw-ingested-record_push", topology.RAW_INGESTED, "record_push"),
]


def settings(**overrides: Any) -> Settings:
    return load_settings(
        secret_key="k" * 32,
        encryption_key=base64.b64encode(bytes(32)).decode(),
        environment="test",
        bus="gcp",
        gcp_project=PROJECT,
        gcp_location=LOCATION,
        **overrides,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered within {timeout}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def targets() -> Iterator[ServedFunctions]:
    mounts = {name: name for name in ("record_event", "record_push", "record_task")}
    with serve_functions(TARGETS, mounts) as served:
        yield served


@pytest.fixture(autouse=True)
def _nothing_recorded(targets: ServedFunctions) -> None:
    for module in targets.modules.values():
        module.RECEIVED.clear()
        module.CALLS.clear()


@pytest.fixture(scope="module")
def pubsub_host(targets: ServedFunctions) -> Iterator[str]:
    with ExitStack() as stack:
        try:
            host = stack.enter_context(pubsub_emulator())
        except EmulatorUnavailable as missing:
            pytest.skip(f"Pub/Sub emulator unavailable: {missing}")
        create_pubsub_topology(host, PROJECT, targets.base_url, SUBSCRIPTIONS)
        yield host


@pytest.fixture(scope="module")
def tasks_host() -> Iterator[str]:
    with ExitStack() as stack:
        try:
            host = stack.enter_context(tasks_emulator())
        except EmulatorUnavailable as missing:
            pytest.skip(f"Cloud Tasks emulator unavailable: {missing}")
        create_queues(host, PROJECT, LOCATION)
        yield host


def test_publish_reaches_push_targets_through_the_emulator(pubsub_host, targets):
    bus = GcpBus(settings(pubsub_emulator_host=pubsub_host, functions_base_url=targets.base_url))
    message = RawIngested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")

    message_id = bus.publish(topology.RAW_INGESTED, message, trace="t-1")

    event_target = targets.modules["record_event"].RECEIVED
    push_target = targets.modules["record_push"].RECEIVED
    wait_for(lambda: event_target and push_target)
    for got, delivery in (event_target[0], push_target[0]):
        assert got == message
        assert delivery.id == message_id
        assert delivery.attributes == {"provider": "binance", "trace": "t-1"}
    # Only the raw push body names the subscription; functions-framework's CloudEvent drops it.
    assert push_target[0][1].source == f"projects/{PROJECT}/subscriptions/raw-ingested-record_push"
    assert event_target[0][1].source == ""


def test_enqueue_reaches_the_http_target_through_the_emulator(tasks_host, targets):
    bus = GcpBus(
        settings(
            cloud_tasks_emulator_host=tasks_host,
            functions_base_url=targets.base_url,
            tasks_service_account_email="tasks@coinfrs-test.iam.gserviceaccount.com",
        )
    )
    named = IngestRequested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")
    unnamed = IngestRequested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")

    first = bus.enqueue("ingestion-binance", "record_task", named, task_name="source-1-2024-01-01")
    second = bus.enqueue("ingestion-binance", "record_task", unnamed)

    received = targets.modules["record_task"].RECEIVED
    wait_for(lambda: len(received) == 2)
    by_name = {delivery.id: (message, headers) for message, delivery, headers in received}
    assert first == "source-1-2024-01-01"
    assert by_name.keys() == {first, second}
    for name, message in ((first, named), (second, unnamed)):
        got, headers = by_name[name]
        assert got == message
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Cloudtasks-Taskname"] == name
        assert headers["X-Cloudtasks-Taskretrycount"] == "0"
        # The emulator sends the full queue path here; Cloud Tasks sends the short name.
        assert headers["X-Cloudtasks-Queuename"].endswith("ingestion-binance")


def test_check_passes_when_topology_exists(pubsub_host, tasks_host):
    GcpBus(settings(pubsub_emulator_host=pubsub_host, cloud_tasks_emulator_host=tasks_host)).check()


def test_check_names_pubsub_when_its_emulator_is_down(tasks_host):
    bus = GcpBus(
        settings(
            pubsub_emulator_host=f"127.0.0.1:{free_port()}", cloud_tasks_emulator_host=tasks_host
        ),
        check_timeout=1,
    )

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as down:
        bus.check()

    assert down.value.dependency == "pubsub"
    assert time.monotonic() - started < 3


def test_check_names_cloud_tasks_when_its_emulator_is_down(pubsub_host):
    bus = GcpBus(
        settings(
            pubsub_emulator_host=pubsub_host, cloud_tasks_emulator_host=f"127.0.0.1:{free_port()}"
        ),
        check_timeout=1,
    )

    with pytest.raises(DependencyUnavailable) as down:
        bus.check()

    assert down.value.dependency == "cloud_tasks"


def test_publish_to_a_stopped_emulator_fails_fast():
    bus = GcpBus(settings(pubsub_emulator_host=f"127.0.0.1:{free_port()}"), timeout=1)
    message = RawIngested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as down:
        bus.publish(topology.RAW_INGESTED, message)

    assert down.value.dependency == "pubsub"
    assert time.monotonic() - started < 5
