"""Functions-framework targets the messaging tests deliver to; each records what reached it."""

from __future__ import annotations

import threading
from typing import Any

import flask
import functions_framework

from shared.messaging.messages import IngestRequested, RawIngested, parse_push, parse_task

# functions-framework executes this file afresh for every create_app(), so each served target
# has its own copy of these.
RECEIVED: list[Any] = []  # (message, delivery) or (message, delivery, headers), in arrival order
CALLS: list[dict[str, str]] = []  # the headers of every request, successful or not
_lock = threading.Lock()


def _count(request_headers: Any) -> int:
    with _lock:
        CALLS.append(dict(request_headers))
        return len(CALLS)


@functions_framework.cloud_event
def record_event(cloud_event: Any) -> None:
    """A Pub/Sub target as the pipeline writes them: a CloudEvent function."""
    RECEIVED.append(parse_push(RawIngested, cloud_event))


@functions_framework.http
def record_push(request: flask.Request) -> tuple[str, int]:
    """A Pub/Sub target that reads the raw push body (which keeps deliveryAttempt)."""
    RECEIVED.append(parse_push(RawIngested, request.get_json()))
    return "", 204


@functions_framework.http
def flaky_push(request: flask.Request) -> tuple[str, int]:
    """Fails the first two deliveries, then records."""
    if _count(request.headers) <= 2:
        return "try again", 503
    RECEIVED.append(parse_push(RawIngested, request.get_json()))
    return "", 204


@functions_framework.cloud_event
def failing_event(cloud_event: Any) -> None:
    """Always fails (functions-framework answers 500)."""
    _count({})
    raise RuntimeError("this target always fails")


@functions_framework.http
def record_task(request: flask.Request) -> tuple[str, int]:
    """A Cloud Tasks target: records the message, its delivery and the request headers."""
    _count(request.headers)
    message, delivery = parse_task(IngestRequested, request)
    RECEIVED.append((message, delivery, dict(request.headers)))
    return "", 204


@functions_framework.http
def failing_task(request: flask.Request) -> tuple[str, int]:
    """Always fails."""
    _count(request.headers)
    return "boom", 500
