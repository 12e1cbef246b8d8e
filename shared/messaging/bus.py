"""The bus interface every caller uses: publish to a topic, enqueue a task, check reachability."""

from __future__ import annotations

import re
from typing import Protocol

from shared.messaging import topology
from shared.messaging.messages import Message

_QUEUES = frozenset(queue.name for queue in topology.QUEUES)
# A target becomes a URL path segment; a task name must fit Cloud Tasks' task id syntax.
_TARGET = re.compile(r"[a-z][a-z0-9_]*")
_TASK_NAME = re.compile(r"[A-Za-z0-9_-]{1,500}")


class Publisher(Protocol):
    """Publishes messages to Pub/Sub topics."""

    def publish(self, topic: str, message: Message, **attributes: str) -> str:
        """Publish `message` (its own attributes plus `attributes`); return the message id."""
        ...


class TaskQueue(Protocol):
    """Creates Cloud Tasks that POST a message to a function target."""

    def enqueue(
        self,
        queue: str,
        target: str,
        message: Message,
        *,
        task_name: str | None = None,
        delay_seconds: int = 0,
    ) -> str:
        """Create a task and return its name; a name already used is "already queued", not an
        error, and the task is not dispatched a second time."""
        ...


class Bus(Publisher, TaskQueue, Protocol):
    """Both halves, plus the health probe."""

    def check(self) -> None:
        """Raise DependencyUnavailable("pubsub" | "cloud_tasks", ...) when unreachable."""
        ...


def check_topic(topic: str, message: Message) -> None:
    """Refuse topics topology does not declare, and a message published to another's topic."""
    if topic not in topology.TOPICS:
        raise ValueError(f"unknown topic {topic!r}; topology declares {topology.TOPICS}")
    if message.TOPIC is not None and topic != message.TOPIC:
        raise ValueError(f"{type(message).__name__} belongs on {message.TOPIC!r}, not {topic!r}")


def merge_attributes(message: Message, extra: dict[str, str]) -> dict[str, str]:
    """The message's own attributes plus `extra`, which may not contradict them (misrouting)."""
    own = message.attributes()
    clashes = sorted(key for key in own.keys() & extra.keys() if own[key] != extra[key])
    if clashes:
        raise ValueError(f"attributes {clashes} contradict the message's own")
    return {**own, **extra}


def check_task(queue: str, target: str, task_name: str | None, delay_seconds: int) -> None:
    """Refuse queues topology does not declare and names Cloud Tasks would reject."""
    if queue not in _QUEUES:
        raise ValueError(f"unknown queue {queue!r}; topology declares {sorted(_QUEUES)}")
    check_target(target)
    if task_name is not None and not _TASK_NAME.fullmatch(task_name):
        raise ValueError(f"task name {task_name!r} must be 1-500 of [A-Za-z0-9_-]")
    if delay_seconds < 0:
        raise ValueError("delay_seconds must not be negative")


def check_target(target: str) -> None:
    """Refuse a target that is not a function name (it becomes a URL path segment)."""
    if not _TARGET.fullmatch(target):
        raise ValueError(f"target {target!r} is not a function name")
