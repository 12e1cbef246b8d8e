"""GcpBus request shapes and error mapping, with the Google clients faked (no emulator)."""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from unittest import mock

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1, tasks_v2

from shared.errors import DependencyUnavailable
from shared.messaging import topology
from shared.messaging.gcp import GcpBus
from shared.messaging.messages import PnlRunRequested, RawIngested, encode

RUN = PnlRunRequested(run_id=uuid.uuid4())


@pytest.fixture
def tasks():
    return mock.create_autospec(tasks_v2.CloudTasksClient, instance=True)


@pytest.fixture
def publisher():
    return mock.create_autospec(pubsub_v1.PublisherClient, instance=True)


@pytest.fixture
def gcp_settings(make_settings):
    return make_settings(
        bus="gcp",
        gcp_location="europe-west1",
        functions_base_url="https://europe-west1-coinfrs-test.cloudfunctions.net/",
        tasks_service_account_email="tasks@coinfrs-test.iam.gserviceaccount.com",
    )


def test_task_is_an_authenticated_http_post_of_the_message(gcp_settings, tasks):
    tasks.create_task.return_value = tasks_v2.Task(
        name="projects/coinfrs-test/locations/europe-west1/queues/default/tasks/run-1"
    )
    bus = GcpBus(gcp_settings, tasks=tasks)

    before = datetime.now(UTC)
    name = bus.enqueue("default", "pnl", RUN, task_name="run-1", delay_seconds=30)

    assert name == "run-1"
    kwargs = tasks.create_task.call_args.kwargs
    queue = "projects/coinfrs-test/locations/europe-west1/queues/default"
    assert kwargs["parent"] == queue
    task = kwargs["task"]
    assert task["name"] == f"{queue}/tasks/run-1"
    request = task["http_request"]
    assert request["http_method"] == tasks_v2.HttpMethod.POST
    assert request["url"] == "https://europe-west1-coinfrs-test.cloudfunctions.net/pnl/"
    assert request["headers"] == {"Content-Type": "application/json"}
    assert request["body"] == encode(RUN)
    assert request["oidc_token"] == {
        "service_account_email": "tasks@coinfrs-test.iam.gserviceaccount.com",
        "audience": "https://europe-west1-coinfrs-test.cloudfunctions.net/pnl",
    }
    delay = task["schedule_time"].ToDatetime(tzinfo=UTC) - before
    assert 29 <= delay.total_seconds() <= 31


def test_existing_task_name_means_already_queued(gcp_settings, tasks):
    tasks.create_task.side_effect = exceptions.AlreadyExists("Requested entity already exists")
    bus = GcpBus(gcp_settings, tasks=tasks)

    assert bus.enqueue("default", "pnl", RUN, task_name="run-1") == "run-1"
    assert bus.enqueue("default", "pnl", RUN, task_name="run-1") == "run-1"


def test_task_creation_failures_are_dependency_unavailable(gcp_settings, tasks):
    tasks.create_task.side_effect = exceptions.ServiceUnavailable("down")
    bus = GcpBus(gcp_settings, tasks=tasks)

    with pytest.raises(DependencyUnavailable) as down:
        bus.enqueue("default", "pnl", RUN)

    assert down.value.dependency == "cloud_tasks"
    assert down.value.details == {"dependency": "cloud_tasks"}


def test_without_service_account_there_is_no_oidc_token(make_settings, tasks):
    tasks.create_task.return_value = tasks_v2.Task(name="projects/p/locations/l/queues/q/tasks/x")
    bus = GcpBus(make_settings(bus="gcp"), tasks=tasks)

    assert bus.enqueue("default", "pnl", RUN) == "x"
    task = tasks.create_task.call_args.kwargs["task"]
    assert "oidc_token" not in task["http_request"]
    assert "name" not in task and "schedule_time" not in task


def test_publish_sends_the_encoded_message_with_its_attributes(gcp_settings, publisher):
    future: Future[str] = Future()
    future.set_result("m-1")
    publisher.publish.return_value = future
    message = RawIngested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")

    assert (
        GcpBus(gcp_settings, publisher=publisher).publish(topology.RAW_INGESTED, message, trace="t")
        == "m-1"
    )

    args, kwargs = publisher.publish.call_args
    assert args == ("projects/coinfrs-test/topics/raw-ingested", encode(message))
    assert kwargs["provider"] == "binance" and kwargs["trace"] == "t"


def test_publish_failure_is_dependency_unavailable(gcp_settings, publisher):
    future: Future[str] = Future()
    future.set_exception(exceptions.NotFound("topic not found"))
    publisher.publish.return_value = future
    message = RawIngested(job_id=uuid.uuid4(), data_source_id=uuid.uuid4(), provider="binance")

    with pytest.raises(DependencyUnavailable) as down:
        GcpBus(gcp_settings, publisher=publisher).publish(topology.RAW_INGESTED, message)

    assert down.value.dependency == "pubsub"


def test_check_reads_every_topic_and_queue(gcp_settings, publisher, tasks):
    GcpBus(gcp_settings, publisher=publisher, tasks=tasks).check()

    topics = [c.kwargs["request"]["topic"] for c in publisher.get_topic.call_args_list]
    queues = [c.kwargs["name"].rsplit("/", 1)[-1] for c in tasks.get_queue.call_args_list]
    assert topics == [f"projects/coinfrs-test/topics/{t}" for t in topology.TOPICS]
    assert queues == [q.name for q in topology.QUEUES]
    assert all(c.kwargs["retry"] is None for c in publisher.get_topic.call_args_list)


def test_check_names_the_missing_dependency(gcp_settings, publisher, tasks):
    tasks.get_queue.side_effect = exceptions.PermissionDenied("no cloudtasks.queues.get")

    with pytest.raises(DependencyUnavailable) as down:
        GcpBus(gcp_settings, publisher=publisher, tasks=tasks).check()

    assert down.value.dependency == "cloud_tasks"
