"""Binance's pipeline functions: ingest (a task), ETL (a push), reconcile (a task or a push)."""

from __future__ import annotations

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from functions.pipeline.common import reject, run_step
from shared.config import bootstrap
from shared.errors import ValidationFailed
from shared.messaging.messages import (
    CanonicalUpdated,
    IngestRequested,
    RawIngested,
    ReconciliationRequested,
    parse_push,
    parse_task,
)
from shared.services import reconciliation, sync

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


@functions_framework.http
def binance_reconcile(request: Request) -> Response:
    # Two triggers, one step: the API's Cloud Task (a range of days) and the pipeline's
    # canonical-updated push (the day a sync just closed).
    body = request.get_json(silent=True) or {}
    try:
        if "message" in body:
            pushed, delivery = parse_push(CanonicalUpdated, body)
            if pushed.provider != PROVIDER:
                return Response(status=204)
            return run_step(
                lambda: reconciliation.after_sync(runtime, pushed), pushed.job_id, delivery
            )
        asked, delivery = parse_task(ReconciliationRequested, request)
    except ValidationFailed as error:
        return reject(error)
    return run_step(lambda: reconciliation.run_requested(runtime, asked), asked.job_id, delivery)
