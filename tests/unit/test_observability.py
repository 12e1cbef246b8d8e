"""Logs: one JSON object per line in Cloud Logging's shape, with no secret in any field."""

from __future__ import annotations

import json
import logging

from shared.observability import CloudLoggingFormatter, redact, request_id_var


def _format(record: logging.LogRecord) -> dict:
    return json.loads(CloudLoggingFormatter().format(record))


def test_a_line_has_severity_time_and_the_request_id():
    token = request_id_var.set("req-42")
    try:
        record = logging.makeLogRecord(
            {"msg": "hello %s", "args": ("there",), "levelname": "WARNING"}
        )
        line = _format(record)
    finally:
        request_id_var.reset(token)
    assert line["severity"] == "WARNING"
    assert line["message"] == "hello there"
    assert line["time"].endswith("Z")
    assert line["request_id"] == "req-42"
    assert line["logging.googleapis.com/labels"] == {"request_id": "req-42"}


def test_extra_fields_are_kept_and_secret_ones_redacted():
    record = logging.makeLogRecord(
        {
            "msg": "calling provider",
            "data_source": "ds-1",
            "api_secret": "abc",
            "request": {"headers": {"Authorization": "Bearer xyz"}, "path": "/x"},
        }
    )
    line = _format(record)
    assert line["data_source"] == "ds-1"
    assert line["api_secret"] == "[redacted]"
    assert line["request"] == {"headers": {"Authorization": "[redacted]"}, "path": "/x"}
    assert "xyz" not in json.dumps(line)


def test_redact_walks_lists_and_nested_names():
    value = {"items": [{"private_key": "PEM", "name": "vault"}], "otp_code": "123456", "code": "1"}
    assert redact(value) == {
        "items": [{"private_key": "[redacted]", "name": "vault"}],
        "otp_code": "[redacted]",
        "code": "[redacted]",
    }


def test_exceptions_carry_their_stack_trace():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: boom" in _format(record)["stack_trace"]


def test_sentry_events_lose_bodies_headers_and_secret_fields():
    from shared.observability import scrub_event

    event = {
        "request": {"url": "/api/v1/x", "data": "{...}", "headers": {"Cookie": "c"}, "cookies": {}},
        "extra": {"api_secret": "s", "job": "j"},
    }
    assert scrub_event(event, {}) == {
        "request": {"url": "/api/v1/x"},
        "extra": {"api_secret": "[redacted]", "job": "j"},
    }


def test_sentry_starts_only_with_a_dsn():
    import sentry_sdk

    from shared.observability import configure_sentry, scrub_event

    configure_sentry(None, "test")
    assert not sentry_sdk.get_client().is_active()
    configure_sentry("https://public@127.0.0.1:9/1", "test")
    try:
        client = sentry_sdk.get_client()
        assert client.is_active()
        assert client.options["include_local_variables"] is False
        assert client.options["before_send"] is scrub_event
        assert client.options["environment"] == "test"
    finally:
        client.close(timeout=0)
        sentry_sdk.init()  # back to the inactive client
