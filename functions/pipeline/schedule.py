"""HTTP function `schedule_daily`: Cloud Scheduler's daily start of the pipeline (00:30 UTC)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from functions.pipeline.common import reject
from shared.config import bootstrap
from shared.errors import ValidationFailed
from shared.http.envelope import json_response
from shared.messaging.messages import DailyRunRequested, decode
from shared.observability import capture_exception
from shared.services import schedule

runtime = bootstrap()
log = logging.getLogger("coinfrs.pipeline")


@functions_framework.http
def schedule_daily(request: Request) -> Response:
    # The scheduler sends `{}`; a run_date in the body replays (or backfills) another day.
    try:
        body = json.loads(request.get_data() or b"{}")
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object")
        today = datetime.now(UTC).date().isoformat()
        message = decode(DailyRunRequested, json.dumps({"run_date": today, **body}))
    except json.JSONDecodeError:
        return reject(ValidationFailed("the body is not JSON"))
    except ValidationFailed as error:
        return reject(error)
    try:
        summary = schedule.fan_out(runtime, message.run_date)
    except Exception as error:
        # 500: Cloud Scheduler retries with backoff, and the fan-out is idempotent.
        log.exception("daily fan-out failed", extra={"run_date": str(message.run_date)})
        capture_exception(error)
        return Response("daily fan-out failed; the scheduler will retry", status=500)
    return json_response(summary.as_json(), 200)
