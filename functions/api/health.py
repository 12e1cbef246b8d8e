"""HTTP function `health`: liveness, database and message-bus checks (no sign-in)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from shared.config import bootstrap
from shared.http.models import ReplyModel
from shared.http.routing import Call, Router
from shared.services import health as service

runtime = bootstrap()
router = Router("health")


class Liveness(ReplyModel):
    status: Literal["ok"]
    version: str
    time: datetime


class DatabaseHealth(ReplyModel):
    status: Literal["ok"]
    database: Literal["ok"]
    revision: str | None


class QueueHealth(ReplyModel):
    status: Literal["ok"]
    bus: Literal["local", "gcp"]


@router.get("/health/", "The process is up", response=Liveness, auth=False)
def liveness(call: Call) -> Liveness:
    return Liveness(**service.liveness())


@router.get(
    "/health/db",
    "The database answers and is migrated",
    response=DatabaseHealth,
    auth=False,
    errors=(503,),
)
def database(call: Call) -> DatabaseHealth:
    return DatabaseHealth(**service.database())


@router.get(
    "/health/queue",
    "Pub/Sub and Cloud Tasks accept work",
    response=QueueHealth,
    auth=False,
    errors=(503,),
)
def queue(call: Call) -> QueueHealth:
    return QueueHealth(**service.queue(runtime.bus, runtime.settings.bus))


@functions_framework.http
def health(request: Request) -> Response:
    return router.dispatch(request)
