"""What every pipeline step shares: run it, and turn a failure into a retry or a failed job."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from werkzeug.wrappers import Response

from shared.errors import ValidationFailed
from shared.messaging.messages import Delivery
from shared.observability import capture_exception
from shared.services import jobs

log = logging.getLogger("coinfrs.pipeline")


def run_step(step: Callable[[], bool], job_id: uuid.UUID, delivery: Delivery) -> Response:
    """200 when the step ran (or had nothing left to do); 500 asks Pub/Sub or Cloud Tasks to
    deliver again, and on the last attempt the job is marked failed first."""
    context = {"job_id": str(job_id), "delivery": delivery.id, "attempt": delivery.attempt}
    try:
        ran = step()
    except Exception as error:
        log.exception("pipeline step failed", extra=context)
        capture_exception(error)
        jobs.step_failed(job_id, error, delivery.is_last_attempt)
        return Response("step failed; delivery will be retried", status=500)
    log.info("pipeline step done" if ran else "duplicate delivery ignored", extra=context)
    return Response(status=200)


def reject(error: ValidationFailed) -> Response:
    """A delivery that can never succeed (malformed, wrong schema version): 400, logged; the
    subscription's dead-letter policy keeps it for inspection."""
    log.error("malformed pipeline message", extra={"error": error.message, **error.details})
    return Response(error.message, status=400)
