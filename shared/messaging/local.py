"""BUS=local: Pub/Sub pushes and Cloud Tasks requests delivered over HTTP, with their retries."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import httpx

from shared.messaging import topology
from shared.messaging.bus import check_target, check_task, check_topic, merge_attributes
from shared.messaging.messages import Message, encode

if TYPE_CHECKING:
    from shared.config import Settings

logger = logging.getLogger(__name__)

# (url, body, headers) -> HTTP status; raising counts as a failed attempt, like a refused socket.
Transport = Callable[[str, bytes, Mapping[str, str]], int]


class HttpTransport:
    """The default transport: a real HTTP POST, as Pub/Sub and Cloud Tasks make."""

    # Cloud Tasks' default dispatch deadline: a slow target is not mistaken for a failed one.
    def __init__(self, timeout: float = 600.0) -> None:
        self._client = httpx.Client(timeout=timeout)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return self._client.post(url, content=body, headers=dict(headers)).status_code


@dataclass(frozen=True)
class Undelivered:
    """A message every attempt failed for: dead-lettered (Pub/Sub) or dropped (Cloud Tasks)."""

    destination: str  # the dead-letter topic, or the queue the task was dropped from
    target: str
    id: str  # message id or task name
    data: bytes  # the encoded message
    attributes: Mapping[str, str]
    attempts: int
    error: str


@dataclass
class _Job:
    kind: Literal["push", "task"]
    target: str
    url: str
    id: str
    data: bytes
    attributes: dict[str, str]
    source: str  # subscription path or queue name
    dead_letter: str  # where it is recorded when attempts run out
    published: str = ""  # RFC 3339 publish time (push)
    eta: float = 0.0  # epoch seconds the task is scheduled for
    attempts: int = 0
    responses: int = 0
    errors: list[str] = field(default_factory=list)

    def request(self) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the next attempt, exactly as the real service sends them."""
        if self.kind == "task":
            return self.data, {
                "Content-Type": "application/json",
                "User-Agent": "Google-Cloud-Tasks",
                "X-CloudTasks-QueueName": self.source,
                "X-CloudTasks-TaskName": self.id,
                "X-CloudTasks-TaskRetryCount": str(self.attempts),
                "X-CloudTasks-TaskExecutionCount": str(self.responses),
                "X-CloudTasks-TaskETA": f"{self.eta:.6f}",
            }
        # Pub/Sub sends the ids in both spellings, and deliveryAttempt because every
        # subscription has a dead-letter policy.
        body = {
            "message": {
                "data": base64.b64encode(self.data).decode("ascii"),
                "attributes": self.attributes,
                "messageId": self.id,
                "message_id": self.id,
                "publishTime": self.published,
                "publish_time": self.published,
            },
            "subscription": self.source,
            "deliveryAttempt": self.attempts + 1,
        }
        return json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}


class LocalBus:
    """Delivers like Pub/Sub push and Cloud Tasks do, from background workers, so publish and
    enqueue return at once; failures are retried with exponential backoff, at most
    topology.MAX_RETRIES times, then dead-lettered (pushes) or dropped (tasks) and recorded."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport | None = None,
        *,
        subscriptions: Iterable[topology.Subscription] = topology.SUBSCRIPTIONS,
        backoff_seconds: float = topology.MIN_BACKOFF_SECONDS,
        workers: int = 4,
    ) -> None:
        self._base_url = settings.functions_base_url.rstrip("/")
        self._project = settings.gcp_project
        self._transport = transport or HttpTransport()
        self._subscriptions = list(subscriptions)
        self._backoff = backoff_seconds
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._order = itertools.count()
        self._due: list[tuple[float, int, _Job]] = []
        self._in_flight = 0
        self._closed = False
        self._task_names: set[tuple[str, str]] = set()
        self._cv = threading.Condition()
        self.dead_letters: list[Undelivered] = []
        self.dropped_tasks: list[Undelivered] = []

    def subscribe(
        self, topic: str, target: str, provider: str | None = None, name: str | None = None
    ) -> topology.Subscription:
        """Add a push subscription to this bus only (tests; the pipeline uses topology's)."""
        if topic not in topology.TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        check_target(target)
        subscription = topology.Subscription(name or f"{topic}-{target}", topic, target, provider)
        self._subscriptions.append(subscription)
        return subscription

    def publish(self, topic: str, message: Message, **attributes: str) -> str:
        check_topic(topic, message)
        attributes = merge_attributes(message, attributes)
        message_id = str(next(self._ids))
        published = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        data = encode(message)
        matching = [s for s in self._subscriptions if s.topic == topic and s.matches(attributes)]
        for subscription in matching:
            self._submit(
                _Job(
                    kind="push",
                    target=subscription.target,
                    url=f"{self._base_url}/{subscription.target}/",
                    id=message_id,
                    data=data,
                    attributes=attributes,
                    source=f"projects/{self._project}/subscriptions/{subscription.name}",
                    dead_letter=topology.dead_letter_topic(topic),
                    published=published,
                ),
                delay=0,
            )
        logger.info(
            "published",
            extra={"topic": topic, "message_id": message_id, "subscriptions": len(matching)},
        )
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
        name = task_name or uuid.uuid4().hex
        with self._cv:
            # Cloud Tasks refuses a name already used in the queue (ALREADY_EXISTS).
            duplicate = (queue, name) in self._task_names
            self._task_names.add((queue, name))
        if duplicate:
            logger.info("task already queued", extra={"queue": queue, "task_name": name})
            return name
        self._submit(
            _Job(
                kind="task",
                target=target,
                url=f"{self._base_url}/{target}/",
                id=name,
                data=encode(message),
                attributes={},
                source=queue,
                dead_letter=queue,
                eta=time.time() + delay_seconds,
            ),
            delay=delay_seconds,
        )
        logger.info("task queued", extra={"queue": queue, "task_name": name, "target": target})
        return name

    def check(self) -> None:
        """Nothing external to reach: the targets are checked by delivering to them."""

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every message is delivered, dead-lettered or dropped."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} message(s) still in flight after {timeout}s")

    def close(self) -> None:
        """Stop the workers; messages still waiting are abandoned."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()

    def _submit(self, job: _Job, delay: float) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the bus is closed")
            self._in_flight += 1
            self._schedule(job, delay)
            # Threads start on first use: a function that never publishes pays nothing.
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="local-bus", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _schedule(self, job: _Job, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), job))
        # notify_all: drain() waits on the same condition and must not swallow the wake-up.
        self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cv.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._due)
            self._attempt(job)

    def _attempt(self, job: _Job) -> None:
        body, headers = job.request()
        job.attempts += 1
        context = {"target": job.target, "message_id": job.id, "attempt": job.attempts}
        try:
            status = self._transport(job.url, body, headers)
        except Exception as error:  # any transport failure is a failed attempt, never a dead worker
            job.errors.append(f"{type(error).__name__}: {error}")
        else:
            job.responses += 1
            if 200 <= status < 300:
                logger.debug("delivered", extra=context)
                self._done()
                return
            job.errors.append(f"HTTP {status}")
        if job.attempts <= topology.MAX_RETRIES:
            delay = min(self._backoff * 2 ** (job.attempts - 1), topology.MAX_BACKOFF_SECONDS)
            logger.warning("delivery failed, retrying", extra={**context, "error": job.errors[-1]})
            with self._cv:
                self._schedule(job, delay)
            return
        last_error = job.errors[-1]
        undelivered = Undelivered(
            job.dead_letter, job.target, job.id, job.data, job.attributes, job.attempts, last_error
        )
        if job.kind == "push":
            self.dead_letters.append(undelivered)
            logger.error("dead-lettered", extra={**context, "topic": job.dead_letter})
        else:
            self.dropped_tasks.append(undelivered)
            logger.error(
                "task dropped after its last attempt", extra={**context, "queue": job.source}
            )
        self._done()

    def _done(self) -> None:
        with self._cv:
            self._in_flight -= 1
            self._cv.notify_all()
