"""The whole API behind the dev server: envelope on every failure, a valid OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from main import TARGETS


def test_openapi_is_a_valid_3_1_document(api):
    response = api.get("/api/v1/openapi.json")
    document = response.get_json()
    assert response.status_code == 200
    assert "success" not in document  # bare, no envelope
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert {"/health/", "/health/db", "/health/queue", "/openapi.json"} <= set(document["paths"])


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/no-such-group/", 404, "NOT_FOUND"),
        ("GET", "/api/v1/health/nope", 404, "NOT_FOUND"),
        ("DELETE", "/api/v1/health/", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/api/v1/openapi.json", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/elsewhere", 404, "NOT_FOUND"),
    ],
)
def test_errors_are_envelopes(api, method, path, status, code):
    response = api.open(path, method=method)
    body = response.get_json()
    assert response.status_code == status
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]


def test_every_target_is_reachable_under_functions(api):
    unknown = api.get("/functions/unknown/")
    assert unknown.status_code == 404
    assert "functions/unknown" in unknown.get_json()["error"]["message"]
    for target in TARGETS:
        # Whatever the target makes of an empty GET, it is the target answering, not the
        # dispatcher's "no route" for an unknown target.
        reply = api.get(f"/functions/{target}/")
        assert f"functions/{target}" not in reply.get_data(as_text=True), target


def test_paths_the_framework_itself_refuses_still_get_the_envelope():
    from tests.conftest import function_client

    response = function_client("portfolios").delete("/api/v1/portfolios/%0Abad")
    body = response.get_json()
    assert response.status_code == 404
    assert body["success"] is False and body["error"]["code"] == "NOT_FOUND"
