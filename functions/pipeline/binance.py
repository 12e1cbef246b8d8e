"""Binance's pipeline functions: `binance_ingest` (a Cloud Task) and `binance_etl` (a push)."""

from __future__ import annotations

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from functions.pipeline.common import reject, run_step
from shared.config import bootstrap
from shared.errors import ValidationFailed
from shared.messaging.messages import IngestRequested, RawIngested, parse_push, parse_task
from shared.services import sync

runtime = bootstrap()
PROVIDER = "binance"


@functions_framework.http
def binance_ingest(request: Request) -> Response:
    try:
        message, delivery = parse_task(IngestRequested, request)
    except ValidationFailed as error:
        return reject(error)
    return run_step(lambda: sync.ingest(runtime, message), message.job_id, delivery)


@functions_framework.http
def binance_etl(request: Request) -> Response:
    # An HTTP target, not a CloudEvent one: only the raw push body carries deliveryAttempt.
    try:
        message, delivery = parse_push(RawIngested, request.get_json(silent=True) or {})
    except ValidationFailed as error:
        return reject(error)
    if message.provider != PROVIDER:
        # Subscriptions filter by provider; the Pub/Sub emulator ignores filters.
        return Response(status=204)
    return run_step(lambda: sync.transform(runtime, message), message.job_id, delivery)
