"""BUS=gcp: the Pub/Sub and Cloud Tasks clients (or their emulators) behind the bus interface."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import DependencyUnavailable
from shared.messaging import topology
from shared.messaging.bus import check_task, check_topic, merge_attributes
from shared.messaging.messages import Message, encode

if TYPE_CHECKING:
    from shared.config import Settings

logger = logging.getLogger(__name__)


@contextmanager
def _unavailable(dependency: str, action: str) -> Iterator[None]:
    """Turn a Google client failure into DependencyUnavailable (503, so the caller retries)."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except (GoogleAPIError, GoogleAuthError, TimeoutError) as error:
        raise DependencyUnavailable(dependency, f"{action} failed: {error}") from error


class GcpBus:
    """Publishes with google-cloud-pubsub and creates HTTP tasks with google-cloud-tasks.

    Clients (and the google.* imports) are created on first use: they cost a cold start
    that functions which never publish should not pay.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Any = None,
        tasks: Any = None,
        timeout: float = 10.0,
        check_timeout: float = 2.0,
    ) -> None:
        self._settings = settings
        self._base_url = settings.functions_base_url.rstrip("/")
        self._publisher = publisher
        self._tasks = tasks
        self._timeout = timeout
        self._check_timeout = check_timeout
        self._lock = threading.Lock()

    def publish(self, topic: str, message: Message, **attributes: str) -> str:
        check_topic(topic, message)
        from google.api_core.retry import Retry

        with _unavailable("pubsub", f"publishing to {topic}"):
            future = self._publisher_client().publish(
                self._topic_path(topic),
                encode(message),
                # The library's default retries for 10 minutes; a function should fail fast.
                retry=Retry(timeout=self._timeout),
                timeout=self._timeout,
                **merge_attributes(message, attributes),
            )
            message_id = future.result(timeout=self._timeout + 1)
        logger.info("published", extra={"topic": topic, "message_id": message_id})
        return message_id

    def enqueue(
        self,
        queue: str,
        target: str,
        message: Message,
        *,
        task_name: str | None = None,
        delay_seconds: int = 0,
    ) -> str:
        check_task(queue, target, task_name, delay_seconds)
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import tasks_v2

        http_request: dict[str, Any] = {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": f"{self._base_url}/{target}/",
            "headers": {"Content-Type": "application/json"},
            "body": encode(message),
        }
        if self._settings.tasks_service_account_email:
            # The audience is the function URL without the trailing path, which is what a
            # Cloud Functions endpoint checks the token against.
            http_request["oidc_token"] = {
                "service_account_email": self._settings.tasks_service_account_email,
                "audience": f"{self._base_url}/{target}",
            }
        task: dict[str, Any] = {"http_request": http_request}
        if task_name:
            task["name"] = f"{self._queue_path(queue)}/tasks/{task_name}"
        if delay_seconds:
            from google.protobuf import timestamp_pb2

            eta = timestamp_pb2.Timestamp()
            eta.FromDatetime(datetime.now(UTC) + timedelta(seconds=delay_seconds))
            task["schedule_time"] = eta
        with _unavailable("cloud_tasks", f"creating a task on {queue}"):
            try:
                created = self._tasks_client().create_task(
                    parent=self._queue_path(queue), task=task, timeout=self._timeout
                )
            except AlreadyExists:
                if task_name is None:
                    raise
                # The name was used before: the task is (or was) queued, which is the point.
                logger.info("task already queued", extra={"queue": queue, "task_name": task_name})
                return task_name
        name = created.name.rsplit("/", 1)[-1]
        logger.info("task queued", extra={"queue": queue, "task_name": name, "target": target})
        return name

    def check(self) -> None:
        """Read every topic and queue topology declares, with a short deadline and no retry."""
        with _unavailable("pubsub", "reading the Pub/Sub topics"):
            publisher = self._publisher_client()
            for topic in topology.TOPICS:
                publisher.get_topic(
                    request={"topic": self._topic_path(topic)},
                    timeout=self._check_timeout,
                    retry=None,
                )
        with _unavailable("cloud_tasks", "reading the Cloud Tasks queues"):
            tasks = self._tasks_client()
            for queue in topology.QUEUES:
                tasks.get_queue(
                    name=self._queue_path(queue.name), timeout=self._check_timeout, retry=None
                )

    def _topic_path(self, topic: str) -> str:
        return f"projects/{self._settings.gcp_project}/topics/{topic}"

    def _queue_path(self, queue: str) -> str:
        s = self._settings
        return f"projects/{s.gcp_project}/locations/{s.gcp_location}/queues/{queue}"

    def _publisher_client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                from google.cloud import pubsub_v1

                host = self._settings.pubsub_emulator_host
                if host:
                    # Passed explicitly: the library itself only reads PUBSUB_EMULATOR_HOST
                    # from os.environ, not from .env.
                    import grpc
                    from google.pubsub_v1.services.publisher.transports import (
                        PublisherGrpcTransport,
                    )

                    channel = grpc.insecure_channel(host)
                    self._publisher = pubsub_v1.PublisherClient(
                        transport=PublisherGrpcTransport(channel=channel)
                    )
                else:
                    self._publisher = pubsub_v1.PublisherClient()
            return self._publisher

    def _tasks_client(self) -> Any:
        with self._lock:
            if self._tasks is None:
                from google.cloud import tasks_v2

                host = self._settings.cloud_tasks_emulator_host
                if host:
                    import grpc
                    from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                        CloudTasksGrpcTransport,
                    )

                    channel = grpc.insecure_channel(host)
                    self._tasks = tasks_v2.CloudTasksClient(
                        transport=CloudTasksGrpcTransport(channel=channel)
                    )
                else:
                    self._tasks = tasks_v2.CloudTasksClient()
            return self._tasks
