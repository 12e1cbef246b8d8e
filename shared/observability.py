"""Structured JSON logs in Cloud Logging's format, secret redaction, and optional Sentry."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
trace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

# Any structured field whose name looks like it could carry a credential is replaced before a log
# line is written, however deep it sits; the message text itself must never be built from secrets.
_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|authorization|cookie|api_?key|private_?key|credential|otp|"
    r"^code$|signature|dsn",
    re.IGNORECASE,
)
REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` with every field whose name suggests a secret replaced."""
    if key and _SECRET_NAME.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line with the keys Cloud Logging lifts into its LogEntry."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
            entry["logging.googleapis.com/labels"] = {"request_id": request_id}
        trace = trace_var.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry[name] = redact(value, name)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured = False


def configure_logging(level: str = "INFO") -> None:
    """Route every logger to one JSON stream on stdout (idempotent per process)."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter())
    root.handlers = [handler]
    # Alembic narrates every migration context at INFO; the health check opens one per call.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _configured = True


def configure_sentry(dsn: str | None, environment: str) -> None:
    """Start Sentry when a DSN is configured; events never carry bodies, cookies or headers."""
    if not dsn:
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        include_local_variables=False,
        before_send=scrub_event,
    )


def scrub_event(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """What Sentry may receive of an event: no request body, cookies, headers or secret fields."""
    request = event.get("request") or {}
    for field in ("data", "cookies", "headers", "query_string"):
        request.pop(field, None)
    return redact(event)


def capture_exception(error: BaseException) -> None:
    """Report an unexpected error to Sentry when it is running."""
    if "sentry_sdk" in sys.modules:
        sys.modules["sentry_sdk"].capture_exception(error)
