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
